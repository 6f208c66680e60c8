package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vdiskio/vdisk/checksum"
	"github.com/vdiskio/vdisk/internal/imagelock"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

// toolSum runs md5sum/sha256sum/... on path and returns the digest.
func toolSum(t *testing.T, tool, path string) string {
	t.Helper()
	out, err := exec.Command(tool, path).Output()
	if err != nil {
		t.Skipf("%s: %v", tool, err)
	}
	return strings.Fields(string(out))[0]
}

// sourceState is what must not change on a source: bytes and times.
type sourceState struct {
	sum   string
	mtime time.Time
	size  int64
}

func stateOf(t *testing.T, path string) sourceState {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return sourceState{sum: toolSum(t, "sha256sum", path), mtime: st.ModTime(), size: st.Size()}
}

// agedSource sets a source's times in the past, so any write would show.
func agedSource(t *testing.T, path string) sourceState {
	t.Helper()
	old := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	return stateOf(t, path)
}

// TestConvertHashLog: convert --hash computes md5sum's and sha256sum's
// digests of the raw export in the copy's pass for every output format,
// writes a log that verify accepts for the output (exit 0), refuses for a
// changed output (1) and cannot use when missing or garbled (2); the
// source's bytes and mtime are unchanged.
func TestConvertHashLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := sparseRaw(t, dir)
	before := agedSource(t, src)
	export := qemutest.ToRaw(t, "raw", src)
	wantMD5, wantSHA := toolSum(t, "md5sum", export), toolSum(t, "sha256sum", export)
	for _, tc := range []struct {
		name, format string
		args         []string
	}{
		{"raw", "raw", nil},
		{"qcow2-c", "qcow2", []string{"-c"}},
		{"vmdk-stream", "vmdk", []string{"-o", "subformat=streamOptimized"}},
		{"vhdx", "vhdx", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, "out-"+tc.name)
			logPath := out + ".log"
			args := append(append([]string{"convert", "--hash", "md5,sha256", "--hash-log", logPath, "-O", tc.format}, tc.args...), src, out)
			stdout, stderr, code := vdisk(t, args...)
			if code != 0 {
				t.Fatalf("convert: %d %s", code, stderr)
			}
			if !strings.Contains(stdout, "MD5 ("+src+") = "+wantMD5) || !strings.Contains(stdout, "SHA256 ("+src+") = "+wantSHA) {
				t.Errorf("printed %q, want md5sum %s and sha256sum %s", stdout, wantMD5, wantSHA)
			}
			f, err := os.Open(logPath)
			if err != nil {
				t.Fatal(err)
			}
			log, err := checksum.ParseLog(f, logPath)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			if log.Source != src || log.Target != out || log.TargetFormat != tc.format || log.Bytes != before.size ||
				log.Started.IsZero() || log.Completed.Before(log.Started) || log.Digests[0].Hex() != wantMD5 || log.Digests[1].Hex() != wantSHA {
				t.Errorf("log %+v", log)
			}
			if _, stderr, code := vdisk(t, "verify", "--hash-log", logPath, out); code != 0 {
				t.Errorf("verify of the output: exit %d %s", code, stderr)
			}
			qemutest.RequireSame(t, "raw", src, tc.format, out)
		})
	}
	if after := stateOf(t, src); after != before {
		t.Errorf("the source changed: before %+v, after %+v", before, after)
	}
	logPath := filepath.Join(dir, "out-raw.log")
	changed := filepath.Join(dir, "out-raw")
	qemutest.IO(t, "raw", changed, "write -P 1 4M 512")
	if stdout, _, code := vdisk(t, "verify", "--hash-log", logPath, changed); code != 1 || !strings.Contains(stdout, "MISMATCH") {
		t.Errorf("verify of a changed image: exit %d %q, want 1 and MISMATCH", code, stdout)
	}
	if _, _, code := vdisk(t, "verify", "--hash-log", filepath.Join(dir, "none.log"), changed); code != 2 {
		t.Errorf("verify with a missing log: exit %d, want 2", code)
	}
	os.WriteFile(filepath.Join(dir, "bad.log"), []byte("vdisk hash log\nbytes: many\n"), 0o644)
	if _, stderr, code := vdisk(t, "verify", "--hash-log", filepath.Join(dir, "bad.log"), changed); code != 2 || !strings.Contains(stderr, "line 2") {
		t.Errorf("verify with a garbled log: exit %d %q, want 2 naming the line", code, stderr)
	}
	if _, stderr, code := vdisk(t, "verify", changed); code != 2 || !strings.Contains(stderr, "--hash-log") {
		t.Errorf("verify of a raw image without a log: exit %d %q, want 2", code, stderr)
	}
}

// TestDDHash: dd --hash digests the copied range (judged by sha1sum of the
// output) in the same pass.
func TestDDHash(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := sparseRaw(t, dir)
	out := filepath.Join(dir, "part.raw")
	stdout, stderr, code := vdisk(t, "dd", "--hash", "sha1", "--hash-log", out+".log", "bs=1M", "skip=9", "count=13", "if="+src, "of="+out)
	if code != 0 {
		t.Fatalf("dd: %d %s", code, stderr)
	}
	if want := toolSum(t, "sha1sum", out); !strings.Contains(stdout, want) {
		t.Errorf("dd printed %q, sha1sum of the output is %s", stdout, want)
	}
	if _, stderr, code := vdisk(t, "verify", "--hash-log", out+".log", out); code != 0 {
		t.Errorf("verify: %d %s", code, stderr)
	}
}

// TestSourceNeverLocked: with a writer's qemu lock held on the source (a
// running VM writing it), a plain convert is refused, which shows the lock
// is seen, but convert --hash, dd --hash, checksum and rescue only read and
// succeed: they take no lock.
func TestSourceNeverLocked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := sparseRaw(t, dir)
	lock, err := imagelock.Acquire(src, imagelock.Writer)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	if _, _, code := vdisk(t, "convert", "-O", "qcow2", src, filepath.Join(dir, "plain.qcow2")); code == 0 {
		t.Fatal("a plain convert ignored a writer's lock on its source; this test cannot tell")
	}
	for _, args := range [][]string{
		{"convert", "--hash", "sha256", "-O", "qcow2", src, filepath.Join(dir, "a.qcow2")},
		{"dd", "--hash", "md5", "if=" + src, "of=" + filepath.Join(dir, "b.raw")},
		{"checksum", src},
		{"rescue", "--mapfile", filepath.Join(dir, "c.map"), src, filepath.Join(dir, "c.raw")},
	} {
		if _, stderr, code := vdisk(t, args...); code != 0 {
			t.Errorf("vdisk %s with the source locked: exit %d %s", args[0], code, stderr)
		}
	}
}
