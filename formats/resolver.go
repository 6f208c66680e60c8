package formats

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// ReferencePolicy says which files an image may name.
type ReferencePolicy int

const (
	// PolicySafe (the default) allows only relative names that, resolved
	// against the directory of the naming image, stay inside that directory
	// tree (symlinks included) and are regular files.
	PolicySafe ReferencePolicy = iota
	// PolicyStrict refuses every reference (for services importing untrusted
	// uploads): an image that names any other file fails to open.
	PolicyStrict
	// PolicyAny also allows absolute names, names leaving the directory and
	// device nodes. Protocol and json: names are still refused: vdisk only
	// opens local files.
	PolicyAny
)

// ReferenceFlag is the CLI flag that widens the policy; errors name it.
const ReferenceFlag = "--references"

func (p ReferencePolicy) String() string {
	switch p {
	case PolicyStrict:
		return "strict"
	case PolicyAny:
		return "any"
	}
	return "safe"
}

// ParseReferencePolicy parses "safe", "strict" or "any".
func ParseReferencePolicy(s string) (ReferencePolicy, error) {
	switch s {
	case "", "safe":
		return PolicySafe, nil
	case "strict":
		return PolicyStrict, nil
	case "any":
		return PolicyAny, nil
	}
	return 0, fmt.Errorf("%w: reference policy %q (want safe, strict or any)", ErrInvalidOption, s)
}

// Resolver turns a name stored in an image into an open file, enforcing a
// ReferencePolicy. The zero value is the safe policy over OS files.
type Resolver struct {
	Policy ReferencePolicy
	// OpenFile opens a checked path; nil opens OS files (tests supply memory).
	OpenFile func(path string, writable bool) (File, error)
}

// protocolName matches "nbd:...", "http://...", "json:{...}" and the like:
// a scheme before any slash.
var protocolName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.\-]*:`)

func (r *Resolver) policy() ReferencePolicy {
	if r == nil {
		return PolicySafe
	}
	return r.Policy
}

func denied(from, ref, why, allow string) error {
	msg := fmt.Sprintf("reference %q named by %s: %s", ref, from, why)
	if allow != "" {
		msg += " (allow with " + allow + ")"
	}
	return &Error{File: from, Offset: -1, Kind: ErrReferenceDenied, Msg: msg}
}

// Resolve checks ref, a name stored in the image at path from, against the
// policy and returns the path to open.
func (r *Resolver) Resolve(from, ref string) (string, error) {
	pol := r.policy()
	switch {
	case ref == "":
		return "", denied(from, ref, "empty name", "")
	case pol == PolicyStrict:
		return "", denied(from, ref, "strict policy refuses every reference", ReferenceFlag+"=safe")
	case strings.ContainsRune(ref, 0):
		return "", denied(from, ref, "name contains NUL", "")
	case protocolName.MatchString(ref) && !filepath.IsAbs(ref):
		return "", denied(from, ref, "protocol and json: names are never opened: vdisk opens local files only, whatever "+ReferenceFlag+" says", "")
	}
	dir := filepath.Dir(from)
	if filepath.IsAbs(ref) {
		if pol != PolicyAny {
			return "", denied(from, ref, "absolute path", ReferenceFlag+"=any")
		}
		return filepath.Clean(ref), nil
	}
	path := filepath.Join(dir, ref)
	if pol == PolicyAny {
		return path, nil
	}
	if !within(dir, path) {
		return "", denied(from, ref, "path leaves the image's directory", ReferenceFlag+"=any")
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", fmt.Errorf("%s: resolving reference %q: %w", from, ref, err)
	}
	realPath, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", fmt.Errorf("%s: reference %q: %w", from, ref, err)
	}
	if !within(realDir, realPath) {
		return "", denied(from, ref, "symlink leads out of the image's directory", ReferenceFlag+"=any")
	}
	st, err := os.Stat(realPath)
	if err != nil {
		return "", fmt.Errorf("%s: reference %q: %w", from, ref, err)
	}
	if !st.Mode().IsRegular() {
		return "", denied(from, ref, "not a regular file", ReferenceFlag+"=any")
	}
	return path, nil
}

// within reports whether path is dir or below it (both cleaned).
func within(dir, path string) bool {
	rel, err := filepath.Rel(dir, path)
	if err != nil {
		return false
	}
	return rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// Open resolves ref (named by the image at from) and opens it.
func (r *Resolver) Open(from, ref string, writable bool) (File, error) {
	path, err := r.Resolve(from, ref)
	if err != nil {
		return nil, err
	}
	if r != nil && r.OpenFile != nil {
		return r.OpenFile(path, writable)
	}
	return OpenOSFile(path, writable)
}
