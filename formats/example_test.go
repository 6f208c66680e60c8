package formats_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"testing/fstest"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/qcow2" // drivers register themselves, like image/png
	_ "github.com/vdiskio/vdisk/raw"
)

// Opening an image (its format probed from the content) and reading it:
// an Image is an io.ReaderAt of the guest's disk, safe for concurrent use,
// and Extents tells which ranges hold data.
func ExampleOpen() {
	ctx := context.Background()
	img, err := formats.Open(ctx, "../testdata/example.qcow2", formats.OpenOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer img.Close()
	sb := make([]byte, 2)
	if _, err := img.ReadAt(sb, 1024+0x38); err != nil { // the ext4 superblock's magic
		log.Fatal(err)
	}
	exts, err := img.Extents(0, img.Size())
	if err != nil {
		log.Fatal(err)
	}
	var data int64
	for _, e := range exts {
		if e.Kind == formats.Data {
			data += e.Length
		}
	}
	fmt.Printf("%s, %d MiB, ext4 magic %#x, %d KiB of data\n", img.Format(), img.Size()>>20, int(sb[0])|int(sb[1])<<8, data>>10)
	// Output: qcow2, 32 MiB, ext4 magic 0xef53, 704 KiB of data
}

// Creating an image with the zero options (qemu's defaults), writing to it
// and reopening it.
func ExampleDriver_Create() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "vdisk-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "new.qcow2")
	f, err := os.Create(path)
	if err != nil {
		log.Fatal(err)
	}
	drv, err := formats.Lookup("qcow2")
	if err != nil {
		log.Fatal(err)
	}
	img, err := drv.Create(ctx, formats.CreateRequest{File: formats.NewOSFile(f), Name: path, Size: 64 << 20})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := img.WriteAt([]byte("hello"), 1<<20); err != nil {
		log.Fatal(err)
	}
	if err := img.Close(); err != nil { // Close flushes
		log.Fatal(err)
	}
	again, err := formats.Open(ctx, path, formats.OpenOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer again.Close()
	buf := make([]byte, 5)
	again.ReadAt(buf, 1<<20)
	fmt.Printf("%s %d MiB %q\n", again.Format(), again.Size()>>20, buf)
	// Output: qcow2 64 MiB "hello"
}

// Typed create options: a driver's CreateOptions struct, whose zero fields
// are qemu's defaults, turned into Options for Create (and Measure). The
// same struct is where `-o` text is parsed and `-o help` printed from.
func ExampleOptionsOf() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "vdisk-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	drv, err := formats.Lookup("qcow2")
	if err != nil {
		log.Fatal(err)
	}
	opts, err := formats.OptionsOf(drv.CreateOptions, qcow2.CreateOptions{ClusterSize: 1 << 20, LazyRefcounts: true})
	if err != nil {
		log.Fatal(err)
	}
	m, err := drv.Measure(ctx, formats.MeasureRequest{Size: 1 << 30, Options: opts})
	if err != nil {
		log.Fatal(err)
	}
	path := filepath.Join(dir, "big-clusters.qcow2")
	f, err := os.Create(path)
	if err != nil {
		log.Fatal(err)
	}
	img, err := drv.Create(ctx, formats.CreateRequest{File: formats.NewOSFile(f), Name: path, Size: 1 << 30, Options: opts})
	if err != nil {
		log.Fatal(err)
	}
	if err := img.Close(); err != nil {
		log.Fatal(err)
	}
	// qemu-img measure -O qcow2 --size 1G -o cluster_size=1M,lazy_refcounts=on
	// says the same 5242880.
	fmt.Printf("keys %v; measured %d bytes required\n", opts.Keys(), m.Required)
	// Output: keys [cluster_size lazy_refcounts]; measured 5242880 bytes required
}

// Opening an image held in memory (or in an object store: anything with
// ReadAt) read-only. It may name no other file: there is no Resolver.
func ExampleOpenReaderAt() {
	data, err := os.ReadFile("../testdata/example.qcow2")
	if err != nil {
		log.Fatal(err)
	}
	img, err := formats.OpenReaderAt(context.Background(), bytes.NewReader(data), int64(len(data)), "upload-1234", formats.OpenOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer img.Close()
	fmt.Println(img.Format(), img.Size())
	// Output: qcow2 33554432
}

// An image in an io/fs.FS whose backing file is in the same FS: the
// reference is resolved there (FSResolver, safe policy), never on the
// local disk.
func ExampleOpenFS() {
	ctx := context.Background()
	base, err := os.ReadFile("../testdata/example.qcow2")
	if err != nil {
		log.Fatal(err)
	}
	fsys := fstest.MapFS{
		"images/base.qcow2":    {Data: base},
		"images/overlay.qcow2": {Data: overlay(ctx, "base.qcow2")},
	}
	img, err := formats.OpenFS(ctx, fsys, "images/overlay.qcow2", formats.OpenOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer img.Close()
	b := img.(formats.Backer)
	fmt.Println(img.Format(), b.BackingName(), "->", b.BackingPath(), b.Backing().Size())
	// Output: qcow2 base.qcow2 -> images/base.qcow2 33554432
}

// overlay makes a qcow2 overlay naming backing (without opening it) and
// returns its bytes.
func overlay(ctx context.Context, backing string) []byte {
	dir, err := os.MkdirTemp("", "vdisk-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Mkdir(filepath.Join(dir, "vm"), 0o755); err != nil {
		log.Fatal(err)
	}
	path := filepath.Join(dir, "vm", "overlay.qcow2")
	f, err := os.Create(path)
	if err != nil {
		log.Fatal(err)
	}
	drv, _ := formats.Lookup("qcow2")
	opts, err := formats.ParseOptions(drv.CreateOptions, "backing_file="+backing+",backing_fmt=qcow2")
	if err != nil {
		log.Fatal(err)
	}
	// The base is where it will be relative to the overlay.
	basePath := filepath.Join(dir, "vm", backing)
	if err := os.MkdirAll(filepath.Dir(basePath), 0o755); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(basePath, mustRead("../testdata/example.qcow2"), 0o644); err != nil {
		log.Fatal(err)
	}
	img, err := drv.Create(ctx, formats.CreateRequest{File: formats.NewOSFile(f), Name: path, Options: opts,
		Open: formats.OpenOptions{Resolver: &formats.DirResolver{Policy: formats.PolicyLocal}}})
	if err != nil {
		log.Fatal(err)
	}
	if err := img.Close(); err != nil {
		log.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	return data
}

func mustRead(path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	return b
}
