package offload

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
)

// TestCopy: Copy copies a prefix of the range exactly (all of it where
// the kernel can, on Linux between two files of one file system; none
// elsewhere), never an error for want of support, and the bytes it says
// it copied are the source's. Across file systems (/dev/shm, tmpfs, to
// the test's directory) it declines without error.
func TestCopy(t *testing.T) {
	dirs := []string{t.TempDir()}
	if shm, err := os.MkdirTemp("/dev/shm", "offload-"); err == nil {
		t.Cleanup(func() { os.RemoveAll(shm) })
		dirs = append(dirs, shm)
	}
	data := make([]byte, 3<<20+123)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	for _, srcDir := range dirs {
		srcPath := filepath.Join(srcDir, "src")
		if err := os.WriteFile(srcPath, data, 0o600); err != nil {
			t.Fatal(err)
		}
		src, err := os.Open(srcPath)
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		for _, c := range []struct{ srcOff, dstOff, n int64 }{
			{0, 0, int64(len(data))},         // whole, aligned: a reflink where possible
			{4096, 8192, 1 << 20},            // aligned middle
			{123, 77, 1<<20 + 5},             // unaligned: copy_file_range only
			{int64(len(data)) - 10, 0, 4096}, // runs past the source's end: short
			{1 << 20, 0, 4 << 20},            // long, past the source's end
		} {
			dst, err := os.Create(filepath.Join(t.TempDir(), "dst"))
			if err != nil {
				t.Fatal(err)
			}
			done, err := Copy(dst, c.dstOff, src, c.srcOff, c.n)
			if err != nil {
				t.Fatalf("%s %+v: %v", srcDir, c, err)
			}
			if done < 0 || done > c.n || c.srcOff+done > int64(len(data)) {
				t.Fatalf("%s %+v: copied %d", srcDir, c, done)
			}
			got := make([]byte, done)
			if _, err := dst.ReadAt(got, c.dstOff); err != nil && done > 0 {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data[c.srcOff:c.srcOff+done]) {
				t.Fatalf("%s %+v: the %d bytes copied differ from the source", srcDir, c, done)
			}
			// The target holds blocks for the bytes copied and no more
			// (the range is allocated before the copy only where the
			// kernel copies and the source has bytes).
			if got, bs, ok := allocation(t, dst); ok && bs > 0 {
				first, end := c.dstOff/bs*bs, (c.dstOff+done+bs-1)/bs*bs
				if done == 0 {
					end = first
				}
				if got > end-first {
					t.Errorf("%s %+v: %d bytes allocated for the %d copied", srcDir, c, got, done)
				}
			}
			dst.Close()
		}
	}
}
