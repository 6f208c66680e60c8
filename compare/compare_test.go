package compare_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/vdiskio/vdisk/compare"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
	_ "github.com/vdiskio/vdisk/qcow2"
	_ "github.com/vdiskio/vdisk/raw"
)

func open(t *testing.T, path string) formats.Image {
	t.Helper()
	img, err := formats.Open(context.Background(), path, formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { img.Close() })
	return img
}

var mismatchAt = regexp.MustCompile(`(?:Content mismatch at offset|Offset) (\d+)`)

// TestImagesMatchQemu: for pairs that differ in one byte (and in size), the
// result and the first-difference offset are what qemu-img compare prints.
func TestImagesMatchQemu(t *testing.T) {
	dir := t.TempDir()
	const size = 8 << 20
	base := make([]byte, size)
	for i := 1 << 20; i < 3<<20; i++ {
		base[i] = byte(i%253 + 1)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a := write("a.raw", base)
	aq := filepath.Join(dir, "a.qcow2")
	qemutest.Img(t, "convert", "-f", "raw", "-O", "qcow2", a, aq)
	for _, at := range []int{0, 1<<20 + 7, 2<<20 + 4096 + 1000, 6<<20 + 511} {
		b := append([]byte(nil), base...)
		b[at] ^= 0x5a
		bp := write(fmt.Sprintf("b%d.raw", at), b)
		for _, strict := range []bool{false, true} {
			res, err := compare.Images(context.Background(), open(t, aq), open(t, bp), compare.Options{Strict: strict})
			if err != nil {
				t.Fatal(err)
			}
			args := []string{"compare", "-f", "qcow2", "-F", "raw", aq, bp}
			if strict {
				args = append(args[:1], append([]string{"-s"}, args[1:]...)...)
			}
			q := qemutest.Exec(t, "qemu-img", args...)
			m := mismatchAt.FindStringSubmatch(q.Stdout)
			if q.Code != 1 || m == nil {
				t.Fatalf("qemu-img %v: exit %d %q", args, q.Code, q.Stdout)
			}
			want, _ := strconv.ParseInt(m[1], 10, 64)
			if res.Identical || res.Offset != want {
				t.Errorf("strict=%v byte %d: %+v; qemu-img says offset %d", strict, at, res, want)
			}
		}
	}
	// Sizes: a longer image with zeros past the shorter one's end is equal
	// except in strict mode.
	longer := write("longer.raw", append(append([]byte(nil), base...), make([]byte, 1<<20)...))
	res, err := compare.Images(context.Background(), open(t, aq), open(t, longer), compare.Options{})
	if err != nil || !res.Identical || !res.SizeMismatch {
		t.Errorf("longer with a zero tail: %+v, %v", res, err)
	}
	if q := qemutest.Exec(t, "qemu-img", "compare", aq, longer); q.Code != 0 {
		t.Errorf("qemu-img disagrees: exit %d", q.Code)
	}
	res, _ = compare.Images(context.Background(), open(t, aq), open(t, longer), compare.Options{Strict: true})
	if res.Identical || !res.SizeMismatch {
		t.Errorf("strict, longer: %+v", res)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := compare.Images(ctx, open(t, aq), open(t, a), compare.Options{}); err != context.Canceled {
		t.Errorf("cancelled compare: %v", err)
	}
}
