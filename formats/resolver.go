package formats

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// ReferencePolicy says which files an image may name.
type ReferencePolicy int

const (
	// PolicySafe (the library's zero value) allows only relative names
	// that, resolved against the directory of the naming image, stay inside
	// that directory tree (symlinks included) and are regular files.
	PolicySafe ReferencePolicy = iota
	// PolicyStrict refuses every reference (for services importing untrusted
	// uploads): an image that names any other file fails to open.
	PolicyStrict
	// PolicyAny also allows absolute names, names leaving the directory and
	// device nodes. Protocol and json: names are still refused: vdisk only
	// opens local files.
	PolicyAny
	// PolicyLocal (the CLI's default) allows any path, absolute or relative
	// (".." included), that resolves to a regular file: never a device,
	// FIFO, socket, directory, protocol or json: name.
	PolicyLocal
)

// ReferenceFlag is the CLI flag that widens the policy; errors name it.
const ReferenceFlag = "--references"

func (p ReferencePolicy) String() string {
	switch p {
	case PolicyStrict:
		return "strict"
	case PolicyAny:
		return "any"
	case PolicyLocal:
		return "local"
	}
	return "safe"
}

// ParseReferencePolicy parses "safe", "local", "strict" or "any".
func ParseReferencePolicy(s string) (ReferencePolicy, error) {
	switch s {
	case "", "safe":
		return PolicySafe, nil
	case "local":
		return PolicyLocal, nil
	case "strict":
		return PolicyStrict, nil
	case "any":
		return PolicyAny, nil
	}
	return 0, fmt.Errorf("%w: reference policy %q (want safe, local, strict or any)", ErrInvalidOption, s)
}

// Resolver opens the files an image names (backing files, external data
// files, extents, parent locators), enforcing a ReferencePolicy. from is the
// name of the naming image's File (File.Name), ref the name as stored in it.
// Implementations: DirResolver (OS files), FSResolver (an io/fs.FS), or any
// backend's own, which can apply a policy with CheckName so that references
// inside a remote image resolve through the same backend.
type Resolver interface {
	// Resolve checks ref against the policy and returns the name Open would
	// open (shown as the backing image's path by `info`).
	Resolve(from, ref string) (string, error)
	// Open resolves ref and opens it.
	Open(from, ref string, writable bool) (File, error)
}

// DirResolver resolves references to OS files relative to the directory of
// the naming image. The zero value is the safe policy.
type DirResolver struct {
	Policy ReferencePolicy
	// UserNamed lists references the user gave on the command line (create
	// -b, convert -B): the user's own choice, allowed under every policy but
	// strict (a protocol or json: name is still refused). A reference
	// matches when it is the same string.
	UserNamed []string
}

// protocolName matches "nbd:...", "http://...", "json:{...}" and the like:
// a scheme before any slash.
var protocolName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.\-]*:`)

func (r *DirResolver) policy() ReferencePolicy {
	if r == nil {
		return PolicySafe
	}
	return r.Policy
}

// refusal is why a policy refuses a reference, before the hint is added.
type refusal struct{ why string }

func (e *refusal) Error() string { return e.why }

func denied(from, ref, why, allow string) error {
	msg := fmt.Sprintf("reference %q named by %s: %s", ref, from, why)
	if allow != "" {
		msg += " (allow with " + allow + ")"
	}
	return &Error{File: from, Offset: -1, Kind: ErrReferenceDenied, Msg: msg}
}

// Resolve checks ref, a name stored in the image at path from, against the
// policy and returns the path to open. A refusal is an ErrReferenceDenied
// naming the policies that would allow the reference (none for names no
// policy opens).
func (r *DirResolver) Resolve(from, ref string) (string, error) {
	pol := r.policy()
	if r != nil && pol != PolicyStrict && slices.Contains(r.UserNamed, ref) {
		pol = PolicyAny
	}
	path, err := resolve(pol, from, ref)
	var ref0 *refusal
	if !errors.As(err, &ref0) {
		return path, err
	}
	return "", denied(from, ref, ref0.why, allowedBy(pol, from, ref))
}

// allowedBy names the wider policies that would let ref through ("" if none).
func allowedBy(pol ReferencePolicy, from, ref string) string {
	var flags []string
	for _, wider := range []ReferencePolicy{PolicySafe, PolicyLocal, PolicyAny} {
		if wider.rank() <= pol.rank() {
			continue
		}
		if _, err := resolve(wider, from, ref); err == nil {
			flags = append(flags, ReferenceFlag+"="+wider.String())
		}
	}
	return strings.Join(flags, " or ")
}

// rank orders the policies from the narrowest (strict) to the widest (any).
func (p ReferencePolicy) rank() int {
	switch p {
	case PolicyStrict:
		return 0
	case PolicySafe:
		return 1
	case PolicyLocal:
		return 2
	}
	return 3
}

// resolve applies one policy; a *refusal error is a policy refusal, any
// other error a failure to look at the file.
func resolve(pol ReferencePolicy, from, ref string) (string, error) {
	switch {
	case ref == "":
		return "", &refusal{"empty name"}
	case pol == PolicyStrict:
		return "", &refusal{"strict policy refuses every reference"}
	case strings.ContainsRune(ref, 0):
		return "", &refusal{"name contains NUL"}
	case protocolName.MatchString(ref) && !filepath.IsAbs(ref):
		return "", &refusal{"protocol and json: names are never opened: vdisk opens local files only, whatever " + ReferenceFlag + " says"}
	}
	dir := filepath.Dir(from)
	path := ref
	if !filepath.IsAbs(ref) {
		path = filepath.Join(dir, ref)
	}
	switch pol {
	case PolicyAny:
		return filepath.Clean(path), nil
	case PolicyLocal:
		return path, regularFile(from, ref, path)
	}
	if filepath.IsAbs(ref) {
		return "", &refusal{"absolute path"}
	}
	if !within(dir, path) {
		return "", &refusal{"path leaves the image's directory"}
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
		return "", &refusal{"symlink leads out of the image's directory"}
	}
	return path, regularFile(from, ref, realPath)
}

// regularFile refuses a path that is not (or does not lead to) a regular file.
func regularFile(from, ref, path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s: reference %q: %w", from, ref, err)
	}
	if !st.Mode().IsRegular() {
		return &refusal{"is " + fileKind(st.Mode()) + ", not a regular file"}
	}
	return nil
}

// fileKind names a non-regular file mode for errors.
func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSocket != 0:
		return "a socket"
	}
	return "a special file"
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
func (r *DirResolver) Open(from, ref string, writable bool) (File, error) {
	path, err := r.Resolve(from, ref)
	if err != nil {
		return nil, err
	}
	return OpenOSFile(path, writable)
}
