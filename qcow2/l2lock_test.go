package qcow2

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

// slowL2File holds the first read at one offset (an L2 table) until
// released, once armed: a slow backend answering one reader late.
type slowL2File struct {
	formats.File
	at       int64
	armed    atomic.Bool
	once     sync.Once
	arrived  chan struct{}
	released chan struct{}
}

func (f *slowL2File) ReadAt(p []byte, off int64) (int, error) {
	if off == f.at && f.armed.Load() {
		f.once.Do(func() {
			close(f.arrived)
			<-f.released
		})
	}
	return f.File.ReadAt(p, off)
}

// TestL2ReadOutsideLock: on a read-only image, a reader waiting for one L2
// table from a slow backend does not stall a reader of another L2 table
// (both used to need the image-wide lock while the table was read).
func TestL2ReadOutsideLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "two-l2.qcow2")
	// 64 KiB clusters: one L2 table maps 512 MiB, so these writes use two.
	qemutest.Img(t, "create", "-q", "-f", "qcow2", path, "1G")
	qemutest.IO(t, "qcow2", path, "write -P 0x11 0 64k", "write -P 0x22 600M 64k")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	l1Off := binary.BigEndian.Uint64(raw[40:])
	l2First := int64(binary.BigEndian.Uint64(raw[l1Off:]) & offsetMask)
	osf, err := formats.OpenOSFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	f := &slowL2File{File: osf, at: l2First, arrived: make(chan struct{}), released: make(chan struct{})}
	img, err := Open(context.Background(), f, formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	f.armed.Store(true)

	first := make(chan []byte, 1)
	go func() {
		b := make([]byte, 4096)
		img.ReadAt(b, 0)
		first <- b
	}()
	<-f.arrived // the first reader waits for its L2 table

	second := make(chan error, 1)
	b := make([]byte, 4096)
	go func() {
		_, err := img.ReadAt(b, 600<<20)
		if err == nil {
			var exts []formats.Extent
			exts, err = img.Extents(600<<20, 64<<10)
			if err == nil && (len(exts) != 1 || exts[0].Kind != formats.Data) {
				t.Errorf("Extents during the slow read: %+v", exts)
			}
		}
		second <- err
	}()
	select {
	case err := <-second:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second): // a guard, not a timing
		close(f.released)
		t.Fatal("the second reader waited for the first one's L2 table")
	}
	if !bytes.Equal(b, bytes.Repeat([]byte{0x22}, 4096)) {
		t.Errorf("second reader got %x..., want 22...", b[:8])
	}
	close(f.released)
	if got := <-first; !bytes.Equal(got, bytes.Repeat([]byte{0x11}, 4096)) {
		t.Errorf("first reader got %x..., want 11...", got[:8])
	}
}
