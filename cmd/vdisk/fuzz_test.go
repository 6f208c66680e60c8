package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
	"github.com/vdiskio/vdisk/internal/fuzzpatch"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

// FuzzOpen feeds arbitrary bytes to probing and to every registered driver's
// reader: opening, extents, reads and info must return errors, never panic,
// and stay within bounded memory. Seeds are small images made by qemu-img in
// every format it writes, plus the bundled example.
func FuzzOpen(f *testing.F) {
	// The base images stay small: small disks, 512-byte qcow2 clusters, no
	// data where a write would allocate a large block (VHD, VDI); VHDX,
	// whose smallest file is several MiB, has its own targets.
	var bases [][]byte
	if _, err := os.Stat("/usr/bin/qemu-img"); err == nil {
		dir := f.TempDir()
		for _, args := range [][]string{
			{"-f", "qcow2", "-o", "cluster_size=512"}, {"-f", "qcow2", "-o", "compat=0.10,cluster_size=512"},
			{"-f", "vmdk", "-o", "subformat=streamOptimized"}, {"-f", "vpc"}, {"-f", "vdi"},
		} {
			path := filepath.Join(dir, "seed")
			os.Remove(path)
			qemutest.Img(f, append(append([]string{"create", "-q"}, args...), path, "256K")...)
			if args[1] == "qcow2" {
				qemutest.IO(f, args[1], path, "write -P 0x5a 4k 1k")
			}
			data, err := os.ReadFile(path)
			if err != nil {
				f.Fatal(err)
			}
			if len(data) > 64<<10 {
				f.Fatalf("seed %v is %d bytes", args, len(data))
			}
			bases = append(bases, data)
		}
	}
	// Inputs are patches over the small images (fuzzpatch): a whole image
	// as the input is minimised for a minute each time the fuzzer finds
	// new coverage.
	for _, s := range fuzzpatch.Seeds(bases) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		file := fileio.NewMem("fuzz.img", fuzzpatch.Apply(bases, input))
		file.ReadOnly = true
		img, err := formats.OpenFile(context.Background(), file, formats.OpenOptions{
			Resolver: &formats.DirResolver{Policy: formats.PolicyStrict},
			Limits:   formats.Limits{MaxTableBytes: 4 << 20, CacheBytes: 1 << 20},
		})
		if err != nil {
			return
		}
		defer img.Close()
		size := img.Size()
		if exts, err := img.Extents(0, min(size, 64<<20)); err == nil {
			var end int64
			for _, e := range exts {
				if e.Offset != end || e.Length <= 0 {
					t.Fatalf("extents not contiguous at %d: %+v", end, e)
				}
				end = e.End()
			}
		}
		buf := make([]byte, 64<<10)
		for _, off := range []int64{0, size / 2, max(0, size-int64(len(buf)))} {
			img.ReadAt(buf, off)
		}
		if in, ok := img.(formats.Informer); ok {
			in.Info()
		}
	})
}
