package checksum

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vdiskio/vdisk/formats"
)

func sampleLog() *Log {
	md5 := Digest{Algorithm: "md5", Sum: bytes.Repeat([]byte{0xab}, 16)}
	sha := Digest{Algorithm: "sha256", Sum: bytes.Repeat([]byte{0x01}, 32)}
	return &Log{Tool: "vdisk test", Command: "vdisk convert --hash md5,sha256 in out",
		Started: time.Date(2026, 12, 1, 9, 0, 0, 5, time.UTC), Completed: time.Date(2026, 12, 1, 9, 1, 0, 0, time.UTC),
		Source: "in.raw", SourceFormat: "raw", Target: "out.raw", TargetFormat: "raw", Bytes: 3 << 20,
		Digests: []Digest{md5, sha},
		Pieces: []Piece{{Name: "my disk.raw.001", Offset: 0, Bytes: 2 << 20, Digests: []Digest{md5, sha}},
			{Name: "out.raw.002", Offset: 2 << 20, Bytes: 1 << 20, Digests: []Digest{md5, sha}}},
		ReadErrors: []ReadError{{Offset: 4096, Length: 512, Err: "input/output error"}}}
}

func TestLogRoundTrip(t *testing.T) {
	l := sampleLog()
	var b bytes.Buffer
	if _, err := l.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	got, err := ParseLog(&b, "log")
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if diff := cmp.Diff(l, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestParseLogRefuses(t *testing.T) {
	var b bytes.Buffer
	sampleLog().WriteTo(&b)
	good := b.String()
	for name, text := range map[string]string{
		"empty":        "",
		"magic":        "dc3dd 7.2\n",
		"no digest":    "vdisk hash log\nbytes: 5\n",
		"no bytes":     "vdisk hash log\nmd5: " + strings.Repeat("00", 16) + "\n",
		"short digest": strings.Replace(good, "md5: abab", "md5: ab", 1),
		"unknown key":  good + "colour: blue\n",
		"twice":        good + "md5: " + strings.Repeat("00", 16) + "\n",
		"bad piece":    good + "piece: x offset -1 bytes 3\n",
		"bad error":    good + "read error: at 5\n",
		"bad time":     strings.Replace(good, "started: 2026", "started: x2026", 1),
		"long line":    good + "command: " + strings.Repeat("x", maxLogLine) + "\n",
	} {
		if _, err := ParseLog(strings.NewReader(text), "log"); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	_, err := ParseLog(strings.NewReader("vdisk hash log\nbytes: x\n"), "the.log")
	if !errors.Is(err, formats.ErrCorrupt) || !strings.Contains(err.Error(), "the.log: line 2") {
		t.Errorf("error %v does not name the file and line", err)
	}
}

func TestVerify(t *testing.T) {
	img := newPieceImage(piece{'A', 100000}, piece{'-', 1 << 20})
	ds, err := Linear(context.Background(), img, []string{"md5", "sha1"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := Verify(context.Background(), img, ds, -1, Options{})
	if err != nil || !v.OK() {
		t.Fatalf("verify of its own digests: %+v %v", v, err)
	}
	ds[1].Sum[0] ^= 1
	v, _ = Verify(context.Background(), img, ds, img.Size(), Options{})
	if v.OK() || len(v.Mismatches) != 1 || v.Mismatches[0].Algorithm != "sha1" {
		t.Errorf("flipped sha1: %+v", v)
	}
	ds[1].Sum[0] ^= 1
	if v, _ := Verify(context.Background(), img, ds, img.Size()+1, Options{}); v.OK() {
		t.Error("an image shorter than the log verified")
	}
	// An image rounded up with zeros verifies against the shorter copy's
	// digests; a non-zero byte past the copy does not.
	short := newPieceImage(piece{'A', 100000}, piece{'-', 1<<20 - 512})
	want, _ := Linear(context.Background(), short, []string{"md5"}, Options{})
	if v, err := Verify(context.Background(), img, want, short.Size(), Options{}); err != nil || !v.OK() {
		t.Errorf("zero-padded image: %+v %v", v, err)
	}
	longer := newPieceImage(piece{'A', 100000}, piece{'-', 1<<20 - 512}, piece{'x', 1})
	if v, err := Verify(context.Background(), longer, want, short.Size(), Options{}); err != nil || v.OK() || v.TailNonZero != short.Size() {
		t.Errorf("non-zero tail: %+v %v", v, err)
	}
}

func FuzzParseLog(f *testing.F) {
	var b bytes.Buffer
	sampleLog().WriteTo(&b)
	f.Add(b.String())
	f.Add("vdisk hash log\nbytes: 0\nsha1: " + strings.Repeat("0", 40) + "\n")
	f.Add("vdisk hash log\npiece: a offset 1 bytes 2 md5\n")
	f.Fuzz(func(t *testing.T, text string) {
		l, err := ParseLog(strings.NewReader(text), "fuzz")
		if err != nil {
			return
		}
		var out bytes.Buffer
		if _, err := l.WriteTo(&out); err != nil {
			t.Fatal(err)
		}
		if _, err := ParseLog(&out, "again"); err != nil {
			t.Fatalf("a parsed log does not parse once written: %v\n%s", err, out.String())
		}
	})
}
