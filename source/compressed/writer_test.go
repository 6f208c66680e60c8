package compressed

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

// compressWith writes data through a parallel Writer of kind into a file.
func compressWith(t *testing.T, dir string, kind Kind, data []byte, opts WriterOptions) string {
	t.Helper()
	var buf bytes.Buffer
	zw, err := NewWriter(&buf, kind, opts)
	if err != nil {
		t.Fatal(err)
	}
	// Uneven writes, as a copy engine makes them.
	for rest := data; len(rest) > 0; {
		n := min(len(rest), 123457)
		if _, err := zw.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "out."+string(kind))
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestWriterReadByTools: what the parallel writer makes passes the stock
// tool's test and decompresses with it to the input bytes; xz and zstd
// outputs read back in place, one block per writer block.
func TestWriterReadByTools(t *testing.T) {
	dir := t.TempDir()
	_, data := sampleRaw(t, dir)
	for _, kind := range WriterKinds {
		t.Run(string(kind), func(t *testing.T) {
			tool := qemutest.Tool(t, string(kind))
			path := compressWith(t, t.TempDir(), kind, data, WriterOptions{BlockBytes: 1 << 20, Workers: 3})
			if out, err := exec.Command(tool, "-t", path).CombinedOutput(); err != nil {
				t.Fatalf("%s -t: %v: %s", kind, err, out)
			}
			got, err := exec.Command(tool, "-d", "-c", path).Output()
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%s -dc: %v; %d bytes, equal %v", kind, err, len(got), bytes.Equal(got, data))
			}
			f, err := (&Spooler{Dir: noSpoolDir(t)}).OpenPath(path, false)
			if kind == Gzip {
				return // gzip has no index: it is spooled
			}
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if in, ok := f.(*InPlace); !ok || in.Blocks() != 8 {
				t.Fatalf("opened as %T, want in place with 8 blocks", f)
			}
			readRandomly(t, f, data)
		})
	}
}

// TestWriterEmpty: an empty input is a valid empty stream for every tool.
func TestWriterEmpty(t *testing.T) {
	for _, kind := range WriterKinds {
		tool := qemutest.Tool(t, string(kind))
		path := compressWith(t, t.TempDir(), kind, nil, WriterOptions{})
		got, err := exec.Command(tool, "-d", "-c", path).Output()
		if err != nil || len(got) != 0 {
			t.Errorf("%s: empty input: %v, %d bytes", kind, err, len(got))
		}
	}
	if _, err := ParseKind("lz4"); err == nil {
		t.Error("lz4 accepted")
	}
}

// FuzzZstdIndex: any bytes index (seek table or frame walk) or fail,
// never panic; what indexes stays inside the file.
func FuzzZstdIndex(f *testing.F) {
	var buf bytes.Buffer
	zw, _ := NewWriter(&buf, Zstd, WriterOptions{BlockBytes: 1000, Workers: 1})
	zw.Write(bytes.Repeat([]byte("vdisk zstd seek table "), 70)) // two frames
	zw.Close()
	f.Add(buf.Bytes())
	f.Add(buf.Bytes()[:len(buf.Bytes())-30]) // the frames alone, walked
	f.Add(seekTable([]block{{fileBytes: 9, virtBytes: 4}}))
	f.Fuzz(func(t *testing.T, in []byte) {
		blocks, err := zstdBlocks(bytes.NewReader(in), int64(len(in)), "fuzz", 1<<20)
		if err != nil {
			return
		}
		for _, b := range blocks {
			if b.fileOff < 0 || b.fileOff+b.fileBytes > int64(len(in)) || b.virtBytes < 0 {
				t.Fatalf("frame %+v outside a %d-byte file", b, len(in))
			}
		}
		s := &Spooler{MaxBlockBytes: 1 << 20}
		file, err := s.openInPlace(formats.ReaderAtFile(bytes.NewReader(in), int64(len(in)), "fuzz"), "fuzz", Zstd, int64(len(in)), 1<<20)
		if err == nil {
			buf := make([]byte, 1<<16)
			for off := int64(0); off < 1<<20; off += int64(len(buf)) {
				if _, err := file.ReadAt(buf, off); err != nil {
					break
				}
			}
			file.Close()
		}
	})
}
