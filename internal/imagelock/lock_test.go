//go:build linux

package imagelock

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// TestAgainstQemuIO: the modes conflict with qemu-io holding an image
// exactly where qemu-img conflicts with it, with qemu's wording.
func TestAgainstQemuIO(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		format string
		flags  []string // qemu-io's
		mode   Mode
		want   string // "" for no conflict
	}{
		{"qcow2", nil, Info, `Failed to get shared "write" lock`},
		{"qcow2", nil, Reader, `Failed to get shared "write" lock`},
		{"qcow2", nil, Writer, `Failed to get "write" lock`},
		{"qcow2", []string{"-r"}, Info, ""},
		{"qcow2", []string{"-r"}, Reader, ""},
		{"qcow2", []string{"-r"}, Writer, `Failed to get "write" lock`},
		{"qcow2", []string{"-r", "-U"}, Writer, ""},
		{"raw", nil, RawReader, ""},
		{"raw", nil, RawWriter, ""},
		{"raw", nil, Reader, `Failed to get shared "write" lock`}, // a conversion's source
		{"raw", []string{"-r"}, RawWriter, ""},
	} {
		name := tc.format + "-" + strings.Join(tc.flags, "") + ".img"
		path := filepath.Join(dir, name)
		qemutest.Img(t, "create", "-q", "-f", tc.format, path, "1M")
		t.Run(name, func(t *testing.T) {
			qemutest.HoldImage(t, tc.format, path, tc.flags...)
			l, err := Acquire(path, tc.mode)
			if tc.want == "" {
				if err != nil {
					t.Errorf("mode %+v: %v, want no conflict", tc.mode, err)
				}
				l.Release()
				return
			}
			var ce *ConflictError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "is another process using the image ["+path+"]") {
				t.Errorf("mode %+v: %v, want %s", tc.mode, err, tc.want)
			}
		})
	}
}

// TestQemuSeesOurLocks: while vdisk holds an image, qemu-img and qemu-io
// refuse it as they refuse each other, and accept it again after Release.
func TestQemuSeesOurLocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "held.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", path, "1M")
	l, err := Acquire(path, Writer)
	if err != nil {
		t.Fatal(err)
	}
	if r := qemutest.Exec(t, "qemu-img", "info", path); r.Code != 1 || !strings.Contains(r.Stderr, `Failed to get shared "write" lock`) {
		t.Errorf("qemu-img info while vdisk writes: exit %d %q", r.Code, r.Stderr)
	}
	if r := qemutest.Exec(t, "qemu-io", "-f", "qcow2", "-c", "length", path); r.Code != 1 || !strings.Contains(r.Stderr, `Failed to get "write" lock`) {
		t.Errorf("qemu-io while vdisk writes: exit %d %q", r.Code, r.Stderr)
	}
	if r := qemutest.Exec(t, "qemu-img", "info", "-U", path); r.Code != 0 {
		t.Errorf("qemu-img info -U while vdisk writes: exit %d %q", r.Code, r.Stderr)
	}
	l.Release()
	r, err := Acquire(path, Reader)
	if err != nil {
		t.Fatal(err)
	}
	if q := qemutest.Exec(t, "qemu-img", "info", path); q.Code != 0 {
		t.Errorf("qemu-img info beside a vdisk reader: exit %d %q", q.Code, q.Stderr)
	}
	if q := qemutest.Exec(t, "qemu-io", "-f", "qcow2", "-c", "length", path); q.Code != 1 || !strings.Contains(q.Stderr, `Failed to get "write" lock`) {
		t.Errorf("qemu-io writer beside a vdisk reader: exit %d %q", q.Code, q.Stderr)
	}
	r.Release()
	if q := qemutest.Exec(t, "qemu-io", "-f", "qcow2", "-c", "length", path); q.Code != 0 {
		t.Errorf("qemu-io after Release: exit %d %q", q.Code, q.Stderr)
	}
}

// TestReleaseWithACopiedDescriptor: a lock's descriptor copied elsewhere (as
// into a child forked by another goroutine, between its fork and its exec)
// does not keep the lock once Release returns.
func TestReleaseWithACopiedDescriptor(t *testing.T) {
	path := filepath.Join(t.TempDir(), "img.qcow2")
	if err := os.WriteFile(path, make([]byte, 4096), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := Acquire(path, Writer)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Dup(int(l.f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	l.Release()
	again, err := Acquire(path, Writer)
	if err != nil {
		t.Fatalf("after Release, with a copy of its descriptor open: %v", err)
	}
	again.Release()
}
