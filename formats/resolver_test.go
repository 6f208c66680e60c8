package formats

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResolverPolicies(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "images")
	outside := filepath.Join(root, "secret.img")
	for _, p := range []string{filepath.Join(dir, "sub", "base.img"), filepath.Join(dir, "base.img"), outside} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(dir, "escape.img")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "base.img"), filepath.Join(dir, "inside.img")); err != nil {
		t.Fatal(err)
	}
	from := filepath.Join(dir, "top.img")
	for _, tc := range []struct {
		ref      string
		policy   ReferencePolicy
		ok       bool
		flagHint string
	}{
		{ref: "base.img", policy: PolicySafe, ok: true},
		{ref: "sub/base.img", policy: PolicySafe, ok: true},
		{ref: "./sub/../base.img", policy: PolicySafe, ok: true},
		{ref: "inside.img", policy: PolicySafe, ok: true},
		{ref: "../secret.img", policy: PolicySafe, flagHint: "--references=any"},
		{ref: outside, policy: PolicySafe, flagHint: "--references=any"},
		{ref: "/etc/passwd", policy: PolicySafe, flagHint: "--references=any"},
		{ref: "escape.img", policy: PolicySafe, flagHint: "--references=any"},
		{ref: "sub", policy: PolicySafe, flagHint: "--references=any"},
		{ref: `json:{"file":{"driver":"nbd","host":"x"}}`, policy: PolicySafe},
		{ref: "nbd://host/export", policy: PolicySafe},
		{ref: "http://example.com/x.img", policy: PolicyAny},
		{ref: "file:base.img", policy: PolicySafe},
		{ref: "", policy: PolicySafe},
		{ref: "base\x00.img", policy: PolicySafe},
		{ref: "base.img", policy: PolicyStrict, flagHint: "--references=safe"},
		{ref: "../secret.img", policy: PolicyAny, ok: true},
		{ref: outside, policy: PolicyAny, ok: true},
	} {
		r := &DirResolver{Policy: tc.policy}
		f, err := r.Open(from, tc.ref, false)
		if tc.ok {
			if err != nil {
				t.Errorf("%s policy, %q: %v", tc.policy, tc.ref, err)
				continue
			}
			f.Close()
			continue
		}
		if !errors.Is(err, ErrReferenceDenied) {
			t.Errorf("%s policy, %q: err = %v, want ErrReferenceDenied", tc.policy, tc.ref, err)
			continue
		}
		if !strings.Contains(err.Error(), from) {
			t.Errorf("error %q does not name the image %s", err, from)
		}
		if tc.flagHint != "" && !strings.Contains(err.Error(), tc.flagHint) {
			t.Errorf("error %q does not name %s", err, tc.flagHint)
		}
	}
}

// TestResolverUserNamed: a backing file the user names on the command line
// is allowed under every policy but strict.
func TestResolverUserNamed(t *testing.T) {
	root := t.TempDir()
	base := filepath.Join(root, "cache", "x.iso")
	if err := os.MkdirAll(filepath.Dir(base), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(base, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	from := filepath.Join(root, "out", "disk.qcow2")
	for _, pol := range []ReferencePolicy{PolicySafe, PolicyLocal, PolicyAny} {
		r := &DirResolver{Policy: pol, UserNamed: []string{base}}
		if _, err := r.Resolve(from, base); err != nil {
			t.Errorf("%s policy: user-named %s refused: %v", pol, base, err)
		}
		if pol == PolicySafe {
			if _, err := r.Resolve(from, "/etc/passwd"); !errors.Is(err, ErrReferenceDenied) {
				t.Errorf("safe policy: a name the user did not give was allowed: %v", err)
			}
		}
	}
	r := &DirResolver{Policy: PolicyStrict, UserNamed: []string{base}}
	if _, err := r.Resolve(from, base); !errors.Is(err, ErrReferenceDenied) {
		t.Errorf("strict policy allowed a user-named file: %v", err)
	}
	r = &DirResolver{Policy: PolicySafe, UserNamed: []string{"json:{}"}}
	if _, err := r.Resolve(from, "json:{}"); !errors.Is(err, ErrReferenceDenied) {
		t.Errorf("a user-named json: name was allowed: %v", err)
	}
}
