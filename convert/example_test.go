package convert_test

import (
	"bytes"
	"context"
	"fmt"
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
