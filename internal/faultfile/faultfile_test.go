package faultfile

import (
	"bytes"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
)

func TestFaults(t *testing.T) {
	data := bytes.Repeat([]byte{0xa5}, 64<<10)
	f := New(fileio.NewMem("disk", data), 512,
		Fault{Offset: 4096, Length: 1, Kind: Bad},
		Fault{Offset: 8192, Length: 1024, Kind: Intermittent, Failures: 2},
		Fault{Offset: 16384, Length: 512, Kind: Slow, Delay: time.Microsecond})
	p := make([]byte, 8192)
	n, err := f.ReadAt(p, 0)
	if n != 4096 || !errors.Is(err, syscall.EIO) {
		t.Fatalf("read over a bad sector: n=%d err=%v, want 4096 and EIO", n, err)
	}
	if !bytes.Equal(p[:n], data[:n]) {
		t.Fatal("the good bytes before the bad sector differ")
	}
	// The bad sector never reads, however often tried.
	for range 5 {
		if _, err := f.ReadAt(p[:512], 4096); !errors.Is(err, syscall.EIO) {
			t.Fatalf("bad sector read: %v", err)
		}
	}
	// Each intermittent sector fails twice, then reads.
	for i := range 3 {
		n, err := f.ReadAt(p[:1024], 8192)
		if i < 2 && (err == nil || n != 0) {
			t.Fatalf("intermittent read %d: n=%d err=%v, want a failure at its first sector", i, n, err)
		}
		if i == 2 && err == nil {
			t.Fatalf("the second intermittent sector read before failing twice")
		}
	}
	if _, err := f.ReadAt(p[:1024], 8192); err == nil {
		t.Fatal("second intermittent sector: want its second failure")
	}
	if n, err := f.ReadAt(p[:1024], 8192); err != nil || n != 1024 {
		t.Fatalf("intermittent sectors after their failures: n=%d err=%v", n, err)
	}
	if n, err := f.ReadAt(p[:512], 16384); err != nil || n != 512 {
		t.Fatalf("slow sector: n=%d err=%v", n, err)
	}
	if got := f.Reads(4096, 512); got != 6 {
		t.Errorf("bad sector read %d times, want 6", got)
	}
	if _, err := f.WriteAt([]byte{1}, 0); !errors.Is(err, formats.ErrReadOnly) || f.Writes() != 1 {
		t.Errorf("write: %v (writes %d), want ErrReadOnly counted", err, f.Writes())
	}
	if err := f.Truncate(0); !errors.Is(err, formats.ErrReadOnly) {
		t.Errorf("truncate: %v", err)
	}
}
