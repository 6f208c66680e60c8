//go:build linux

package convert

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"

	"github.com/vdiskio/vdisk/formats"
)

// TestMappedChunkFaultFallsBackToRead: a raw source's chunk is mapped
// from the page cache; when the file shrinks under the mapping, the scan
// faults, and the chunk is read instead, which reports the shrunk source
// (ErrSourceChanged) rather than crashing or copying zeros.
// faultSink keeps the compiler from dropping the loop that reads a mapping.
var faultSink byte

func TestMappedChunkFaultFallsBackToRead(t *testing.T) {
	const size = 8 << 20
	path, want := makeSparseRaw(t, size, []int64{0, 2 << 20, 6 << 20}, 1<<20, nil)
	src, err := formats.Open(context.Background(), path, formats.OpenOptions{Format: "raw"})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, err := src.ReadAt(make([]byte, size), 0); err != nil { // into the page cache
		t.Fatal(err)
	}
	dst := &memImage{data: make([]byte, size)}
	c, err := newCopier(dst, src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !c.mapReads {
		t.Fatal("a raw source in an OS file is not mapped")
	}
	// Unharmed, the mapped chunk gives the file's bytes.
	tk := &task{off: 2 << 20, length: 2 << 20, data: true}
	if res := c.process(context.Background(), tk); res.err != nil {
		t.Fatal(res.err)
	} else {
		if res.mapping == nil {
			t.Skip("the kernel did not keep the source's pages cached")
		}
		var got []byte
		for _, o := range res.ops {
			got = append(got, o.buf...)
		}
		if !bytes.Equal(got, want[2<<20:3<<20]) {
			t.Error("mapped chunk's data differ from the source's")
		}
		c.release(res)
	}
	// Shrunk under the mapping: the split faults and falls back.
	buf := make([]byte, 2<<20)
	res := &result{buf: buf}
	err = c.splitMapped(tk, buf, res, func(data []byte) error {
		if err := os.Truncate(path, 1<<20); err != nil {
			t.Fatal(err)
		}
		for _, b := range data {
			faultSink += b
		}
		return nil
	})
	if !errors.Is(err, formats.ErrSourceChanged) {
		t.Fatalf("chunk of a source shrunk under its mapping: %v, want ErrSourceChanged", err)
	}
	if res.mapping != nil {
		t.Error("the faulted mapping was kept")
	}
}
