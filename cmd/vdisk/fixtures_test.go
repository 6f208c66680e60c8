package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// manyExtents makes a raw file with a 4 KiB data block every 64 KiB, so a
// conversion makes many thousands of progress steps.
func manyExtents(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "many.raw")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := bytes.Repeat([]byte{0xee}, 4096)
	for off := int64(0); off < 1<<30; off += 64 << 10 {
		if _, err := f.WriteAt(block, off); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// waitTemp reads progress until a temporary output file exists beside dst.
func waitTemp(t *testing.T, stdout io.Reader, dir string) string {
	t.Helper()
	buf := make([]byte, 64)
	for {
		matches, _ := filepath.Glob(filepath.Join(dir, ".out.raw.vdisk-*.tmp"))
		if len(matches) == 1 {
			return matches[0]
		}
		if _, err := stdout.Read(buf); err != nil {
			t.Fatalf("conversion ended before its temporary file was seen: %v", err)
		}
	}
}
