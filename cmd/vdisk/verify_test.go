package main

import (
	"crypto/md5"
	enchex "encoding/hex"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// ewfSource writes a 2 MiB raw disk of random and zero runs.
func ewfSource(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	r := rand.New(rand.NewPCG(7, 7))
	data := make([]byte, 2<<20)
	for i := 0; i < len(data)/2; i++ {
		data[i] = byte(r.Uint32())
	}
	path := filepath.Join(dir, "src.raw")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path, data
}

// TestVerifyStoredHashes: vdisk verify against the digests an E01 stores,
// for an image ewfacquire made and one vdisk made: 0 when they match, 1
// after a chunk is damaged, 2 for an image that stores none.
func TestVerifyStoredHashes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src, data := ewfSource(t, dir)
	sum := md5.Sum(data)
	mine := filepath.Join(dir, "mine.E01")
	if _, stderr, code := vdisk(t, "convert", "-O", "ewf", "-o", "compression=none,case_number=K-1,examiner=Ann", src, mine); code != 0 {
		t.Fatalf("convert: %s", stderr)
	}
	r := qemutest.Exec(t, "ewfacquire", "-u", "-q", "-c", "fast", "-t", filepath.Join(dir, "theirs"), src)
	if r.Code != 0 {
		t.Fatalf("ewfacquire: %s%s", r.Stdout, r.Stderr)
	}
	theirs := filepath.Join(dir, "theirs.E01")
	for _, img := range []string{mine, theirs} {
		out, stderr, code := vdisk(t, "verify", img)
		if code != verifyMatch || !strings.Contains(out, "md5: stored "+enchex.EncodeToString(sum[:])) || !strings.Contains(out, "verified") {
			t.Fatalf("verify %s: exit %d\n%s%s", img, code, out, stderr)
		}
	}
	out, _, code := vdisk(t, "verify", "--output=json", mine)
	if code != 0 || !strings.Contains(out, `"match": true`) || !strings.Contains(out, `"algorithm": "sha1"`) {
		t.Fatalf("verify json: exit %d\n%s", code, out)
	}
	info, _, code := vdisk(t, "info", mine)
	for _, want := range []string{"case number: K-1", "examiner: Ann", "md5: " + enchex.EncodeToString(sum[:]), "segments: 1", "chunk size: 32768"} {
		if code != 0 || !strings.Contains(info, want) {
			t.Errorf("info lacks %q:\n%s", want, info)
		}
	}

	// Damage one byte of chunk data (uncompressed: the data of chunk 10 lies
	// 10*(32768+4) bytes into the sectors section).
	b, err := os.ReadFile(mine)
	if err != nil {
		t.Fatal(err)
	}
	at := strings.Index(string(b), "sectors") + 76 + 10*(32768+4) + 100
	b[at] ^= 1
	damaged := filepath.Join(dir, "damaged.E01")
	os.WriteFile(damaged, b, 0o644)
	out, stderr, code := vdisk(t, "verify", damaged)
	if code != verifyMismatch || !strings.Contains(stderr, "chunk 10 (disk offset 327680)") || !strings.Contains(out, "MISMATCH") {
		t.Fatalf("verify damaged: exit %d\n%s%s", code, out, stderr)
	}
	if r := qemutest.Exec(t, "ewfverify", "-q", damaged); r.Code == 0 {
		t.Fatalf("ewfverify accepts the damaged image too:\n%s", r.Stdout)
	}
	if _, stderr, code := vdisk(t, "verify", src); code != verifyError || !strings.Contains(stderr, "keep no digests") {
		t.Fatalf("verify raw: exit %d %s", code, stderr)
	}
	if _, _, code := vdisk(t, "verify", filepath.Join(dir, "absent.E01")); code != verifyError {
		t.Fatalf("verify of a missing file: exit %d", code)
	}
	// convert --salvage reads on past the damaged chunk.
	if _, stderr, code := vdisk(t, "convert", "--salvage", "-O", "raw", damaged, filepath.Join(dir, "salvaged.raw")); code != 0 ||
		!strings.Contains(stderr, "offset 327680") {
		t.Fatalf("salvage: exit %d %s", code, stderr)
	}
	if _, stderr, code := vdisk(t, "convert", "-O", "raw", damaged, filepath.Join(dir, "x.raw")); code == 0 || !strings.Contains(stderr, "damaged.E01: chunk at offset") {
		t.Fatalf("convert without salvage: exit %d %s", code, stderr)
	}
}
