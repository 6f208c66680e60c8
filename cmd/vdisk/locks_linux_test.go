//go:build linux

package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// TestImageLocksAgainstQemuIO: with qemu-io holding an image (as a running
// VM would), every vdisk command exits as qemu-img does on the same
// command line, with qemu's lock message; -U reads anyway.
func TestImageLocksAgainstQemuIO(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	img := filepath.Join(dir, "vm.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", img, "16M")
	qemutest.IO(t, "qcow2", img, "write -P 0x5a 0 1M")
	rawImg := filepath.Join(dir, "vm.raw")
	qemutest.Img(t, "create", "-q", "-f", "raw", rawImg, "16M")
	dest := filepath.Join(dir, "dest.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", dest, "16M")
	out := filepath.Join(dir, "out.raw")
	type line struct {
		args   []string
		phrase string // in both tools' stderr when they fail
	}
	check := func(t *testing.T, lines []line) {
		for _, l := range lines {
			q := qemutest.Exec(t, "qemu-img", l.args...)
			_, stderr, code := vdisk(t, l.args...)
			if code != q.Code || (q.Code != 0 && (!strings.Contains(stderr, l.phrase) || !strings.Contains(q.Stderr, l.phrase))) {
				t.Errorf("%s: vdisk exit %d %q; qemu-img exit %d %q; want the same exit and %q",
					strings.Join(l.args, " "), code, stderr, q.Code, q.Stderr, l.phrase)
			}
		}
	}
	t.Run("writer", func(t *testing.T) {
		qemutest.HoldImage(t, "qcow2", img)
		qemutest.HoldImage(t, "qcow2", dest)
		check(t, []line{
			{[]string{"info", img}, `Failed to get shared "write" lock`},
			{[]string{"info", "-U", "--output=json", img}, ""},
			{[]string{"map", img}, `Failed to get shared "write" lock`},
			{[]string{"map", "-U", img}, ""},
			{[]string{"check", img}, `Failed to get shared "write" lock`},
			{[]string{"check", "-U", img}, ""},
			{[]string{"compare", img, img}, `Failed to get shared "write" lock`},
			{[]string{"snapshot", "-l", "-U", img}, ""},
			{[]string{"convert", "-O", "raw", img, out}, `Failed to get shared "write" lock`},
			{[]string{"convert", "-U", "-O", "raw", img, out}, ""},
			{[]string{"resize", img, "32M"}, `Failed to get "write" lock`},
			{[]string{"convert", "-U", "-O", "qcow2", img, dest}, `Failed to get "write" lock`},
		})
		// The destination in use was left alone (still qemu-img's empty image).
		if r := qemutest.Exec(t, "qemu-io", "-r", "-U", "-f", "qcow2", "-c", "read -P 0 0 1M", dest); r.Code != 0 || strings.Contains(r.Stdout, "Pattern verification failed") {
			t.Errorf("the destination in use changed: %s%s", r.Stdout, r.Stderr)
		}
	})
	t.Run("reader", func(t *testing.T) {
		qemutest.HoldImage(t, "qcow2", img, "-r")
		check(t, []line{
			{[]string{"info", img}, ""},
			{[]string{"map", img}, ""},
			{[]string{"convert", "-O", "raw", img, out}, ""},
			{[]string{"resize", img, "32M"}, `Failed to get "write" lock`},
		})
	})
	t.Run("raw", func(t *testing.T) {
		qemutest.HoldImage(t, "raw", rawImg)
		check(t, []line{
			{[]string{"info", rawImg}, ""},
			{[]string{"map", rawImg}, ""},
			{[]string{"convert", "-O", "raw", rawImg, out}, `Failed to get shared "write" lock`},
			{[]string{"dd", "bs=64k", "count=1", "if=" + rawImg, "of=" + filepath.Join(dir, "dd.raw")}, ""},
		})
	})
}
