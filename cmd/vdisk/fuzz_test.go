package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

// FuzzOpen feeds arbitrary bytes to probing and to every registered driver's
// reader: opening, extents, reads and info must return errors, never panic,
// and stay within bounded memory. Seeds are small images made by qemu-img in
// every format it writes, plus the bundled example.
func FuzzOpen(f *testing.F) {
	if example, err := os.ReadFile(filepath.Join("..", "..", "testdata", "example.qcow2")); err == nil {
		f.Add(example[:min(len(example), 256<<10)])
	}
	if _, err := os.Stat("/usr/bin/qemu-img"); err == nil {
		dir := f.TempDir()
		for _, args := range [][]string{
			{"-f", "qcow2"}, {"-f", "qcow2", "-o", "compat=0.10"}, {"-f", "vmdk"},
			{"-f", "vmdk", "-o", "subformat=streamOptimized"}, {"-f", "vpc"},
			{"-f", "vpc", "-o", "subformat=fixed"}, {"-f", "vhdx"}, {"-f", "vdi"},
		} {
			path := filepath.Join(dir, "seed")
			os.Remove(path)
			qemutest.Img(f, append(append([]string{"create", "-q"}, args...), path, "1M")...)
			if args[len(args)-1] != "subformat=streamOptimized" { // stream images take no random writes
				qemutest.IO(f, args[1], path, "write -P 0x5a 4k 8k")
			}
			data, err := os.ReadFile(path)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file := fileio.NewMem("fuzz.img", data)
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
