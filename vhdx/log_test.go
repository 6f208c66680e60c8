package vhdx

import (
	"bytes"
	"context"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
)

func filled(n int, c byte) []byte { return bytes.Repeat([]byte{c}, n) }

// logImage is a 16 MiB disk with block 0 allocated (0x11), and a pending
// log whose active sequence (seq 5, 6) wraps around the end of the 1 MiB
// log: it rewrites a sector of block 0, zeroes 8 KiB of it, and rewrites
// the BAT page so block 1 is allocated at block 0's place + 1 MiB.
func logImage(t testing.TB) (img []byte, want []byte) {
	b := memImage(t, 16<<20, "block_size=1M", map[int64][]byte{0: filled(1<<20, 0x11)})
	batOff := regionOf(b, regionBAT)
	blk0 := batOffset(getBAT(b, 0))
	h, _ := decodeHeader(b[header2Offset:])
	logLen := int64(h.LogLength)
	fileSize := uint64(len(b))

	batPage := append([]byte(nil), b[batOff:batOff+logSectorSize]...)
	newBlock := int64(fileSize) // block 1 placed at the end of the file
	copy(batPage[8:], le64(batEntry(payloadFull, uint64(newBlock))))

	e1 := encodeLogEntry(5, uint32(logLen-logSectorSize), testLogGUID, fileSize, fileSize+1<<20, []logDesc{
		{fileOff: blk0 + 4096, data: filled(4096, 0x22)},
		{fileOff: blk0 + 16384, zeroLen: 8192},
	})
	e2 := encodeLogEntry(6, uint32(logLen-logSectorSize), testLogGUID, fileSize, fileSize+1<<20, []logDesc{
		{fileOff: blk0 + 4096, data: append(filled(2048, 0x33), filled(2048, 0x22)...)},
		{fileOff: batOff, data: batPage},
	})
	stale := encodeLogEntry(3, 0, testLogGUID, fileSize, fileSize, []logDesc{{fileOff: blk0, data: filled(4096, 0x44)}})
	broken := encodeLogEntry(9, 0, testLogGUID, fileSize, fileSize, []logDesc{{fileOff: blk0, data: filled(4096, 0x55)}})
	broken[100] ^= 1 // checksum no longer matches
	addLog(b, logLen-logSectorSize, e1, e2)
	addLog(b, 256<<10, stale)
	addLog(b, 512<<10, broken)

	want = make([]byte, 16<<20)
	copy(want, filled(1<<20, 0x11))
	copy(want[4096:], filled(2048, 0x33))
	copy(want[6144:], filled(2048, 0x22))
	clear(want[16384 : 16384+8192])
	return b, want
}

func le64(v uint64) []byte {
	return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24), byte(v >> 32), byte(v >> 40), byte(v >> 48), byte(v >> 56)}
}

func readAll(t testing.TB, img formats.Image) []byte {
	t.Helper()
	got := make([]byte, img.Size())
	if _, err := img.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestLogReplayInMemory(t *testing.T) {
	b, want := logImage(t)
	orig := append([]byte(nil), b...)
	f := fileio.NewMem("log.vhdx", b)
	f.ReadOnly = true
	img, err := Open(context.Background(), f, formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(img.entries) != 2 || img.entries[0].seq != 5 || img.entries[1].seq != 6 {
		t.Fatalf("active sequence: %d entries", len(img.entries))
	}
	if got := readAll(t, img); !bytes.Equal(got, want) {
		t.Fatal("replayed content differs")
	}
	exts, _ := img.Extents(0, 2<<20)
	if len(exts) != 1 || exts[0].Kind != formats.Data || exts[0].Length != 2<<20 {
		t.Errorf("block 1 not allocated by the replayed BAT: %+v", exts)
	}
	if !bytes.Equal(f.Bytes(), orig) {
		t.Fatal("open modified the file")
	}

	// check -r all on a writable copy replays into the file.
	wf := fileio.NewMem("log.vhdx", orig)
	img, err = Open(context.Background(), wf, formats.OpenOptions{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := img.Check(context.Background(), formats.CheckOptions{RepairAll: true})
	if err != nil || rep.CorruptionsFixed != 1 {
		t.Fatalf("repair: %+v %v", rep, err)
	}
	again, err := Open(context.Background(), fileio.NewMem("log.vhdx", wf.Bytes()), formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(again.entries) != 0 {
		t.Error("log still pending after repair")
	}
	if got := readAll(t, again); !bytes.Equal(got, want) {
		t.Fatal("content after on-disk replay differs")
	}
	if size, _ := wf.Size(); size != int64(len(orig))+1<<20 {
		t.Errorf("file size after replay %d, want %d (LastFileOffset)", size, len(orig)+1<<20)
	}
}

func TestLogRefusals(t *testing.T) {
	b := memImage(t, 8<<20, "", nil)
	size := uint64(len(b))
	blk := int64(len(b)) - 4096
	cases := []struct {
		name  string
		entry []byte
		kind  error
	}{
		{"truncated-since", encodeLogEntry(1, 0, testLogGUID, size+1<<20, size, []logDesc{{fileOff: blk, data: filled(4096, 1)}}), formats.ErrCorrupt},
		{"write-past-end", encodeLogEntry(1, 0, testLogGUID, size, size, []logDesc{{fileOff: int64(size) + 8<<20, data: filled(4096, 1)}}), formats.ErrCorrupt},
		{"huge-zero", encodeLogEntry(1, 0, testLogGUID, size, size, []logDesc{{fileOff: 0, zeroLen: 1 << 62}}), formats.ErrCorrupt},
		{"huge-last-offset", encodeLogEntry(1, 0, testLogGUID, size, 1<<62, nil), formats.ErrCorrupt},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := append([]byte(nil), b...)
			addLog(img, 0, c.entry)
			_, err := openBytes(img, formats.OpenOptions{})
			if !errorsIs(err, c.kind) {
				t.Fatalf("got %v, want %v", err, c.kind)
			}
		})
	}
	t.Run("log-over-limit", func(t *testing.T) {
		img := append([]byte(nil), b...)
		addLog(img, 0, encodeLogEntry(1, 0, testLogGUID, size, size, nil))
		_, err := openBytes(img, formats.OpenOptions{Limits: formats.Limits{MaxTableBytes: 512 << 10}})
		if !errorsIs(err, formats.ErrLimit) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("no-valid-entry", func(t *testing.T) {
		img := append([]byte(nil), b...)
		e := encodeLogEntry(1, 0, mustGUID("99999999-2222-3333-4444-555555555555"), size, size, []logDesc{{fileOff: blk, data: filled(4096, 1)}})
		addLog(img, 0, e) // wrong LogGuid: nothing to replay
		im, err := openBytes(img, formats.OpenOptions{})
		if err != nil || len(im.entries) != 0 {
			t.Fatalf("got %v, %d entries", err, len(im.entries))
		}
	})
}

// TestLogScanBudget: a log whose every sector starts a structurally valid
// entry as long as the log (bad checksums) is refused quickly instead of
// being checksummed once per sector.
func TestLogScanBudget(t *testing.T) {
	const logLen = 8 << 20
	log := make([]byte, logLen)
	e := encodeLogEntry(1, 0, testLogGUID, 0, 0, nil)
	le := func(b []byte, v uint32) { b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24) }
	for pos := 0; pos < logLen; pos += logSectorSize {
		copy(log[pos:], e[:logSectorSize])
		le(log[pos+8:], logLen) // entry length: the whole log; checksum now wrong
	}
	entries, ok := activeSequence(log, testLogGUID)
	if ok || entries != nil {
		t.Fatalf("got %d entries, ok=%v; want a refusal", len(entries), ok)
	}
	// The same log with one real entry verifies within the budget.
	real := make([]byte, logLen)
	copy(real, encodeLogEntry(1, 0, testLogGUID, 0, 0, []logDesc{{fileOff: 4096, data: filled(4096, 7)}}))
	if entries, ok := activeSequence(real, testLogGUID); !ok || len(entries) != 1 {
		t.Fatalf("real log: %d entries, ok=%v", len(entries), ok)
	}
}
