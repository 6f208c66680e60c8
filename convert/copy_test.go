package convert

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/sparse"
	_ "github.com/vdiskio/vdisk/raw"
)

// makeSparseRaw writes a raw file of size bytes with data at the given
// offsets (each len bytes of random, non-zero content) and explicit zero
// blocks at zeroAt; the rest are holes. It returns the path and content.
func makeSparseRaw(t *testing.T, size int64, dataAt []int64, dataLen int, zeroAt []int64) (string, []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "src.raw")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, size)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, off := range dataAt {
		for i := range dataLen {
			want[off+int64(i)] = byte(rng.IntN(255) + 1)
		}
		if _, err := f.WriteAt(want[off:off+int64(dataLen)], off); err != nil {
			t.Fatal(err)
		}
	}
	for _, off := range zeroAt {
		if _, err := f.WriteAt(make([]byte, 64<<10), off); err != nil {
			t.Fatal(err)
		}
	}
	return path, want
}

func TestRunRawToRaw(t *testing.T) {
	const size = 48 << 20
	src, want := makeSparseRaw(t, size, []int64{0, 4096, 5 << 20, 20<<20 + 512, size - 4096}, 3000, []int64{10 << 20, 30 << 20})
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"default", Options{}},
		{"out-of-order", Options{OutOfOrder: true}},
		{"one-worker", Options{Workers: 1}},
		{"sparse-64k", Options{SparseBytes: 64 << 10}},
		{"no-sparse", Options{NoSparse: true}},
		{"small-chunks", Options{ChunkBytes: 8192}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "out.raw")
			var last int64
			tc.opts.Progress = func(done, total int64) {
				if done < last || total != size {
					t.Errorf("progress %d/%d after %d", done, total, last)
				}
				last = done
			}
			if err := Run(context.Background(), Job{Source: src, Target: dst, Format: "raw", Copy: tc.opts}); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(dst)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatal("content differs")
			}
			if last != size {
				t.Errorf("progress ended at %d, want %d", last, size)
			}
			alloc, err := sparse.AllocatedPath(dst)
			if err != nil {
				t.Fatal(err)
			}
			if tc.opts.NoSparse && alloc < size {
				t.Errorf("-S 0 output has %d bytes allocated, want all %d", alloc, size)
			}
			if !tc.opts.NoSparse && alloc > 1<<20 {
				t.Errorf("sparse output has %d bytes allocated; holes and zero blocks were written", alloc)
			}
			entries, _ := os.ReadDir(filepath.Dir(dst))
			if len(entries) != 1 {
				t.Errorf("output directory holds %d entries, want only the output", len(entries))
			}
		})
	}
}

func TestRunCancelledLeavesNothing(t *testing.T) {
	src, _ := makeSparseRaw(t, 8<<20, []int64{0, 4 << 20}, 4096, nil)
	dir := t.TempDir()
	dst := filepath.Join(dir, "out.raw")
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := Run(ctx, Job{Source: src, Target: dst, Copy: Options{Workers: 1, ChunkBytes: 4096,
		Progress: func(done, total int64) {
			calls++
			cancel()
		}}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("cancelled conversion left %v", entries)
	}
}

func TestRunFailureKeepsExistingDestination(t *testing.T) {
	src, _ := makeSparseRaw(t, 1<<20, []int64{0}, 4096, nil)
	dir := t.TempDir()
	dst := filepath.Join(dir, "out.raw")
	if err := os.WriteFile(dst, []byte("previous content"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := Run(context.Background(), Job{Source: src, Target: dst, Format: "raw", CreateOptions: "nosuch=1"})
	if !errors.Is(err, formats.ErrInvalidOption) {
		t.Fatalf("err = %v, want ErrInvalidOption", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Run(ctx, Job{Source: src, Target: dst}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	got, _ := os.ReadFile(dst)
	if string(got) != "previous content" {
		t.Fatalf("destination changed to %q", got)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("failed conversions left %v", entries)
	}
}

func TestRunRefusesSameFile(t *testing.T) {
	src, _ := makeSparseRaw(t, 1<<20, []int64{0}, 4096, nil)
	link := filepath.Join(filepath.Dir(src), "link.raw")
	if err := os.Symlink(src, link); err != nil {
		t.Fatal(err)
	}
	for _, dst := range []string{src, link} {
		if err := Run(context.Background(), Job{Source: src, Target: dst}); !errors.Is(err, ErrSameFile) {
			t.Errorf("convert %s -> %s: err = %v, want ErrSameFile", src, dst, err)
		}
	}
}
