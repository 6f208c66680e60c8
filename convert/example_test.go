package convert_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/vdiskio/vdisk/convert"
	"github.com/vdiskio/vdisk/formats"
	_ "github.com/vdiskio/vdisk/qcow2" // drivers register themselves, like image/png
	_ "github.com/vdiskio/vdisk/raw"
	_ "github.com/vdiskio/vdisk/vmdk"
)

// The README's library example: convert an image to a compressed qcow2 with
// a progress callback, then open the result.
func ExampleRun() {
	dir, err := os.MkdirTemp("", "vdisk-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "example.qcow2")
	var percent int64
	err = convert.Run(context.Background(), convert.Job{
		Source: "../testdata/example.qcow2",
		Target: out, Format: "qcow2", CreateOptions: "cluster_size=64k",
		Copy: convert.Options{
			Compress: true,
			Progress: func(done, total int64) { percent = done * 100 / total },
		},
	})
	if err != nil {
		panic(err)
	}
	img, err := formats.Open(context.Background(), out, formats.OpenOptions{})
	if err != nil {
		panic(err)
	}
	defer img.Close()
	fmt.Printf("%d%%: a %s image of %d bytes\n", percent, img.Format(), img.Size())
	// Output: 100%: a qcow2 image of 33554432 bytes
}

// Streaming an image into an io.Writer (here a buffer; an upload body or
// an HTTP response works the same) as a streamOptimized VMDK, with
// progress.
func ExampleToWriter() {
	ctx := context.Background()
	src, err := formats.Open(ctx, "../testdata/example.qcow2", formats.OpenOptions{})
	if err != nil {
		panic(err)
	}
	defer src.Close()
	var out bytes.Buffer
	var percent int64
	err = convert.ToWriter(ctx, &out, src, convert.Stream{
		Format: "vmdk", CreateOptions: "subformat=streamOptimized",
		Copy: convert.Options{Progress: func(done, total int64) { percent = done * 100 / total }},
	})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%d%%, %q\n", percent, out.Bytes()[:4])
	// Output: 100%, "KDMV"
}

// Copy is the engine without files: any formats.Image into any
// formats.Writable (here a raw image in memory), in parallel, skipping what
// the source does not allocate, with progress.
func ExampleCopy() {
	ctx := context.Background()
	src, err := formats.Open(ctx, "../testdata/example.qcow2", formats.OpenOptions{})
	if err != nil {
		panic(err)
	}
	defer src.Close()
	drv, err := formats.Lookup("raw")
	if err != nil {
		panic(err)
	}
	mem := &memFile{}
	dst, err := drv.Create(ctx, formats.CreateRequest{File: mem, Name: "copy.raw", Size: src.Size()})
	if err != nil {
		panic(err)
	}
	var last int64
	err = convert.Copy(ctx, dst, src, convert.Options{
		Workers:      4,
		TargetIsZero: true, // a new image reads as zeros: zero ranges are not written
		Progress:     func(done, total int64) { last = done },
	})
	if err != nil {
		panic(err)
	}
	if err := dst.Close(); err != nil {
		panic(err)
	}
	fmt.Printf("copied %d of %d bytes; ext4 magic %x\n", last, src.Size(), mem.data[1080:1082])
	// Output: copied 33554432 of 33554432 bytes; ext4 magic 53ef
}

// Section is dd's view: a window of an image, itself an image, which Copy
// or ReadAt take like any other. Here the 1 KiB ext4 superblock of the
// example disk, whose volume label is at byte 120.
func ExampleSection() {
	img, err := formats.Open(context.Background(), "../testdata/example.qcow2", formats.OpenOptions{})
	if err != nil {
		panic(err)
	}
	sb := convert.Section(img, 1024, 1024)
	defer sb.Close() // closes img too
	label := make([]byte, 16)
	if _, err := sb.ReadAt(label, 120); err != nil {
		panic(err)
	}
	fmt.Printf("%d bytes, label %q\n", sb.Size(), bytes.TrimRight(label, "\x00"))
	// Output: 1024 bytes, label "example"
}

// memFile is a formats.File in memory, for the examples.
type memFile struct{ data []byte }

func (m *memFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(m.data)) {
		return 0, io.EOF
	}
	n := copy(p, m.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	if end := off + int64(len(p)); end > int64(len(m.data)) {
		m.Truncate(end)
	}
	return copy(m.data[off:], p), nil
}

func (m *memFile) Truncate(size int64) error {
	if size <= int64(len(m.data)) {
		m.data = m.data[:size:size] // growing again appends new zeros
		return nil
	}
	m.data = append(m.data, make([]byte, size-int64(len(m.data)))...)
	return nil
}

func (m *memFile) Size() (int64, error) { return int64(len(m.data)), nil }
func (m *memFile) Name() string         { return "copy.raw" }
func (m *memFile) Close() error         { return nil }
