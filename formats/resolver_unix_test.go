//go:build unix

package formats

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestResolverLocalPolicy: the CLI's default opens any path that resolves to
// a regular file and nothing else; refusals name only policies that would
// allow the reference.
func TestResolverLocalPolicy(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "images")
	outside := filepath.Join(root, "cache", "x.iso")
	for _, p := range []string{filepath.Join(dir, "base.img"), outside} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fifo := filepath.Join(root, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(root, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := os.Symlink(outside, filepath.Join(dir, "link.iso")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(fifo, filepath.Join(dir, "fifolink")); err != nil {
		t.Fatal(err)
	}
	from := filepath.Join(dir, "top.qcow2")
	type tc struct {
		ref  string
		pol  ReferencePolicy
		ok   bool
		hint string // the whole "(allow with ...)" text; "" means no hint at all
	}
	cases := []tc{
		{ref: "base.img", pol: PolicyLocal, ok: true},
		{ref: outside, pol: PolicyLocal, ok: true},
		{ref: "../cache/x.iso", pol: PolicyLocal, ok: true},
		{ref: "link.iso", pol: PolicyLocal, ok: true},
		{ref: outside, pol: PolicySafe, hint: "(allow with --references=local or --references=any)"},
		{ref: "../cache/x.iso", pol: PolicySafe, hint: "(allow with --references=local or --references=any)"},
		{ref: "link.iso", pol: PolicySafe, hint: "(allow with --references=local or --references=any)"},
		{ref: "base.img", pol: PolicyStrict, hint: "(allow with --references=safe or --references=local or --references=any)"},
		{ref: outside, pol: PolicyStrict, hint: "(allow with --references=local or --references=any)"},
		{ref: fifo, pol: PolicyLocal, hint: "(allow with --references=any)"},
		{ref: "fifolink", pol: PolicyLocal, hint: "(allow with --references=any)"},
		{ref: sock, pol: PolicyLocal, hint: "(allow with --references=any)"},
		{ref: root, pol: PolicyLocal, hint: "(allow with --references=any)"},
		{ref: "..", pol: PolicyLocal, hint: "(allow with --references=any)"},
		{ref: `json:{"file":{"filename":"/etc/passwd"}}`, pol: PolicyLocal},
		{ref: "nbd://127.0.0.1/x", pol: PolicyLocal},
		{ref: "file:base.img", pol: PolicyLocal},
		{ref: "", pol: PolicyLocal},
	}
	// A character device node (1,3 is null) made here, never one under /dev.
	null := filepath.Join(root, "null")
	if err := syscall.Mknod(null, syscall.S_IFCHR|0o666, 1<<8|3); err == nil {
		cases = append(cases, tc{ref: null, pol: PolicyLocal, hint: "(allow with --references=any)"})
	} else {
		t.Logf("no character device case: mknod: %v", err)
	}
	for _, c := range cases {
		r := &DirResolver{Policy: c.pol}
		path, err := r.Resolve(from, c.ref)
		if c.ok {
			if err != nil {
				t.Errorf("%s policy, %q: %v", c.pol, c.ref, err)
			} else if st, err := os.Stat(path); err != nil || !st.Mode().IsRegular() {
				t.Errorf("%s policy, %q: resolved to %q (%v)", c.pol, c.ref, path, err)
			}
			continue
		}
		if !errors.Is(err, ErrReferenceDenied) {
			t.Errorf("%s policy, %q: err = %v, want ErrReferenceDenied", c.pol, c.ref, err)
			continue
		}
		hasHint := strings.Contains(err.Error(), "(allow with")
		if (c.hint == "" && hasHint) || !strings.Contains(err.Error(), c.hint) {
			t.Errorf("%s policy, %q: error %q, want hint %q", c.pol, c.ref, err, c.hint)
		}
	}
}
