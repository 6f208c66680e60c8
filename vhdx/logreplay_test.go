package vhdx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
)

// TestReplayIndexMatchesNaiveReplay: the swept index gives, byte for byte,
// what applying every op in order to a byte array gives (the oracle is the
// spec's rule, last change wins, written the obvious quadratic way).
func TestReplayIndexMatchesNaiveReplay(t *testing.T) {
	const fileBytes = 256 << 10
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		var ops []logOp
		for range 1 + rng.IntN(60) {
			off := int64(rng.IntN(fileBytes/logSectorSize)) * logSectorSize
			if rng.IntN(2) == 0 {
				data := bytes.Repeat([]byte{byte(1 + rng.IntN(250))}, logSectorSize)
				data[rng.IntN(logSectorSize)] = 0xEE
				ops = append(ops, logOp{fileOff: off, data: data})
				continue
			}
			n := int64(rng.IntN(8)) * logSectorSize // zero-length runs included
			ops = append(ops, logOp{fileOff: off, zeroLen: min(n, fileBytes-off)})
		}
		base := bytes.Repeat([]byte{0x5A}, fileBytes)
		want := bytes.Clone(base)
		for _, op := range ops {
			if op.data != nil {
				copy(want[op.fileOff:], op.data)
			} else {
				clear(want[op.fileOff : op.fileOff+op.zeroLen])
			}
		}
		o := &overlay{File: fileio.NewMem("base", bytes.Clone(base)), size: fileBytes, spans: replayIndex(ops)}
		got := make([]byte, fileBytes)
		// Reads of odd sizes at odd offsets cross span boundaries.
		for off := 0; off < fileBytes; {
			n := min(1+rng.IntN(20000), fileBytes-off)
			if _, err := o.ReadAt(got[off:off+n], int64(off)); err != nil {
				t.Fatal(err)
			}
			off += n
		}
		if i := firstDiff(got, want); i >= 0 {
			t.Fatalf("round %d: byte %d is %#x, want %#x (%d ops)", round, i, got[i], want[i], len(ops))
		}
		for i := 1; i < len(o.spans); i++ {
			if o.spans[i-1].end > o.spans[i].off {
				t.Fatalf("round %d: spans overlap: %+v %+v", round, o.spans[i-1], o.spans[i])
			}
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// quadraticLog is case 3 of issue 19: a pending log (16 MiB, in a file of
// about 28 MiB) whose one entry holds data sectors and, interleaved, a
// great many zero descriptors: replaying it cost data sectors × zero
// descriptors, and every read cost the number of zero descriptors.
func quadraticLog(t testing.TB, logBytes int64) []byte {
	const diskBytes = 32 << 20
	b := memImage(t, diskBytes, "block_size=1M,log_size="+formatMiB(logBytes), map[int64][]byte{0: filled(diskBytes, 0x11)})
	blk0 := batOffset(getBAT(b, 0)) // the blocks were allocated in order, contiguously
	addQuadraticEntry(t, b, logBytes, blk0, diskBytes, uint64(len(b)))
	return b
}

// addQuadraticEntry fills the log of b (logBytes long) with one entry
// whose changes cover [target, target+span) of the file: half the log
// holds data sectors (each to its own place in the first half of the span),
// the rest zero descriptors (32 bytes each, in the second half) interleaved
// with them. last is the file size the entry asks for.
func addQuadraticEntry(t testing.TB, b []byte, logBytes, target, span int64, last uint64) {
	fileSize := uint64(len(b))
	nData := int(logBytes / 2 / logSectorSize)
	nZero := int((logBytes-int64(nData+1)*logSectorSize)/logDescSize) - nData - 200
	descs := make([]logDesc, 0, nData+nZero)
	sectors := span / 2 / logSectorSize
	for i := range nZero {
		if i%(nZero/nData+1) == 0 {
			at := target + int64(len(descs)*7919)%sectors*logSectorSize
			descs = append(descs, logDesc{fileOff: at, data: filled(logSectorSize, byte(0x20+i%64))})
		}
		descs = append(descs, logDesc{fileOff: target + span/2 + int64(i*104729)%sectors*logSectorSize, zeroLen: logSectorSize})
	}
	e := encodeLogEntry(7, 0, testLogGUID, fileSize, last, descs)
	if int64(len(e)) > logBytes {
		t.Fatalf("entry of %d bytes does not fit the %d-byte log", len(e), logBytes)
	}
	addLog(b, 0, e)
}

func formatMiB(n int64) string { return fmt.Sprintf("%dM", n>>20) }

// TestQuadraticLogOpensFast: case 3's image opens and reads in well under a
// second (it took 108 s before the replay was indexed), and the result is
// the naive replay's.
func TestQuadraticLogOpensFast(t *testing.T) {
	b := quadraticLog(t, 16<<20)
	start := time.Now()
	img, err := Open(context.Background(), fileio.NewMem("log.vhdx", b), formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	got := make([]byte, img.Size())
	for off := 0; off < len(got); off += 64 << 10 { // as a conversion reads
		if _, err := img.ReadAt(got[off:off+64<<10], int64(off)); err != nil {
			t.Fatal(err)
		}
	}
	ops := len(img.entries[0].ops)
	t.Logf("%d-byte file, %d log ops: open and full read in %v", len(b), ops, time.Since(start))
	// The work is bounded by the index's shape, not by a clock: at most two
	// spans per op, so a read is a binary search plus the spans it covers.
	if ov, ok := img.r.(*overlay); !ok {
		t.Fatalf("the log was not replayed into an overlay (%T)", img.r)
	} else if len(ov.spans) > 2*ops {
		t.Errorf("replay index has %d spans for %d ops, want at most %d", len(ov.spans), ops, 2*ops)
	}
	// The oracle: apply the ops in order to a copy of the file, and drop
	// its log so that nothing is replayed when it is opened.
	want := bytes.Clone(b)
	patchHeaders(want, func(h *header) { h.LogGUID = guid{} })
	for _, op := range img.entries[0].ops {
		if op.data != nil {
			copy(want[op.fileOff:], op.data)
		} else {
			clear(want[op.fileOff : op.fileOff+op.zeroLen])
		}
	}
	ref, err := Open(context.Background(), fileio.NewMem("replayed.vhdx", want), formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	if len(ref.entries) != 0 || !bytes.Equal(got, readAll(t, ref)) {
		t.Error("the indexed replay differs from the naive one")
	}
}

// TestLogBudget: a log whose replay needs more than the metadata budget is
// one ErrLimit naming the log.
func TestLogBudget(t *testing.T) {
	b := quadraticLog(t, 8<<20)
	_, err := Open(context.Background(), fileio.NewMem("log.vhdx", b), formats.OpenOptions{Limits: formats.Limits{MaxMetadataBytes: 4 << 20}})
	if !errors.Is(err, formats.ErrLimit) || !bytes.Contains([]byte(err.Error()), []byte("log")) {
		t.Fatalf("got %v, want a metadata budget error for the log", err)
	}
}
