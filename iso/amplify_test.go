package iso

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/vdiskio/vdisk/formats"
)

// overlapISO is case 7 of issue 19: an image with one 1 MiB file and 200
// one-byte files whose directory records are patched to point at the big
// file's extent, with a length of 1 MiB minus shrink(i) bytes.
func overlapISO(t *testing.T, shrink func(i int) int) (img, big []byte) {
	big = make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	img = smallISO(t, CreateOptions{}, func(dir string) {
		os.WriteFile(filepath.Join(dir, "big.bin"), big, 0o644)
		for i := range 200 {
			os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d.txt", i)), []byte{'x'}, 0o644)
		}
	})
	bigLBA := binary.LittleEndian.Uint32(img[findRecord(t, img, "BIG.BIN;1")+drExtent:])
	for i := range 200 {
		rec := findRecord(t, img, fmt.Sprintf("F%03d.TXT;1", i))
		both32(img[rec+drExtent:], bigLBA)
		both32(img[rec+drDataLength:], uint32(len(big)-shrink(i)))
	}
	return img, big
}

// TestExtractOverlapBudget: files crafted to overlap stop with ErrLimit
// before the copies exceed the image's size (they would write 200 MiB from
// an image of about 1.5 MiB).
func TestExtractOverlapBudget(t *testing.T) {
	img, _ := overlapISO(t, func(i int) int { return 1 + i })
	f, err := openBytes(img)
	if err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	err = f.Extract(context.Background(), "/", dest)
	if !errors.Is(err, formats.ErrLimit) {
		t.Fatalf("extract of overlapping files: %v, want ErrLimit", err)
	}
	var written int64
	filepath.Walk(dest, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			written += fi.Size()
		}
		return nil
	})
	if written > int64(len(img)) {
		t.Errorf("wrote %d bytes from a %d-byte image", written, len(img))
	}
}

// TestExtractSharedExtentsAsLinks: files sharing exactly one run of
// extents (hard links, deduplicated content) extract as hard links of one
// copy: every name reads the shared bytes, and they are one file.
func TestExtractSharedExtentsAsLinks(t *testing.T) {
	img, big := overlapISO(t, func(int) int { return 0 })
	f, err := openBytes(img)
	if err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	if err := f.Extract(context.Background(), "/", dest); err != nil {
		t.Fatal(err)
	}
	first, err := os.Stat(filepath.Join(dest, "BIG.BIN"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		name := filepath.Join(dest, fmt.Sprintf("F%03d.TXT", i))
		got, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(name)
		if !bytes.Equal(got, big) || !os.SameFile(fi, first) {
			t.Fatalf("%s: %d bytes, same file as BIG.BIN: %v", name, len(got), os.SameFile(fi, first))
		}
	}
}
