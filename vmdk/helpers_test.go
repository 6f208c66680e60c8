package vmdk

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"os"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
	"github.com/vdiskio/vdisk/internal/sparse"
	"github.com/vdiskio/vdisk/internal/zero"
)

// openPath opens a VMDK by path with the default (safe) options.
func openPath(t testing.TB, path string) *Image {
	t.Helper()
	img, err := formats.Open(context.Background(), path, formats.OpenOptions{Format: Name})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { img.Close() })
	return img.(*Image)
}

// rawSHA is qemutest's block digest of a raw file, skipping its holes.
func rawSHA(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	runs, err := sparse.Runs(f, 0, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	const bs = 64 << 10
	buf := make([]byte, bs)
	var offb [8]byte
	next := int64(0)
	for _, r := range runs {
		if r.Hole {
			continue
		}
		for b := max(r.Offset/bs*bs, next); b < r.Offset+r.Length; b += bs {
			n := min(bs, st.Size()-b)
			if _, err := f.ReadAt(buf[:n], b); err != nil && err != io.EOF {
				t.Fatal(err)
			}
			next = b + bs
			if zero.Is(buf[:n]) {
				continue
			}
			binary.BigEndian.PutUint64(offb[:], uint64(b))
			h.Write(offb[:])
			h.Write(buf[:n])
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// requireSameAsQemu checks that vdisk reads path as qemu-img does.
func requireSameAsQemu(t *testing.T, path string) *Image {
	t.Helper()
	want := rawSHA(t, qemutest.ToRaw(t, "vmdk", path))
	img := openPath(t, path)
	if got := qemutest.BlockSHA(t, img); got != want {
		t.Fatalf("%s: vdisk digest %s, qemu-img %s", path, got, want)
	}
	return img
}

// readAll reads a whole (small) image.
func readAll(t testing.TB, img formats.Image) []byte {
	t.Helper()
	buf := make([]byte, img.Size())
	if _, err := img.ReadAt(buf, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	return buf
}
