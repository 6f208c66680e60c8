package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// TestConvertSplit: -o split=SIZE (and --split) writes pieces whose
// concatenation is byte-identical to the single-file output, for raw and
// qcow2; qemu-img checks and compares the concatenated qcow2; vdisk reads
// the set through its first piece; a missing piece is an error naming it;
// the hash log lists per-piece digests that verify checks, and a changed
// piece fails verify with exit 1.
func TestConvertSplit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := sparseRaw(t, dir)
	for _, tc := range []struct{ format, flag, size string }{{"raw", "-o", "16M"}, {"qcow2", "--split", "1M"}} {
		t.Run(tc.format, func(t *testing.T) {
			single := filepath.Join(dir, "single."+tc.format)
			if _, stderr, code := vdisk(t, "convert", "-O", tc.format, src, single); code != 0 {
				t.Fatal(stderr)
			}
			out := filepath.Join(dir, "split."+tc.format)
			args := []string{"convert", "-O", tc.format, "--hash", "sha256", "--hash-log", out + ".log"}
			if tc.flag == "-o" {
				args = append(args, "-o", "split="+tc.size)
			} else {
				args = append(args, "--split", tc.size)
			}
			if _, stderr, code := vdisk(t, append(args, src, out)...); code != 0 {
				t.Fatal(stderr)
			}
			matches, _ := filepath.Glob(out + ".0*")
			var cat []byte
			for _, m := range matches {
				b, _ := os.ReadFile(m)
				cat = append(cat, b...)
			}
			want, _ := os.ReadFile(single)
			if len(matches) < 2 || !bytes.Equal(cat, want) {
				t.Fatalf("%d pieces; concatenated equal to the single output: %v", len(matches), bytes.Equal(cat, want))
			}
			whole := filepath.Join(dir, "cat."+tc.format)
			os.WriteFile(whole, cat, 0o644)
			if tc.format == "qcow2" {
				qemutest.RequireClean(t, "qcow2", whole)
			}
			qemutest.RequireSame(t, "raw", src, tc.format, whole)
			if _, stderr, code := vdisk(t, "compare", src, out+".001"); code != 0 {
				t.Errorf("vdisk compare with the set: %d %s", code, stderr)
			}
			if stdout, stderr, code := vdisk(t, "verify", "--hash-log", out+".log", out+".001"); code != 0 || strings.Count(stdout, ": OK") != len(matches) {
				t.Errorf("verify: %d\n%s%s", code, stdout, stderr)
			}
		})
	}
	out := filepath.Join(dir, "split.raw")
	os.Rename(out+".002", out+".002.moved")
	if _, stderr, code := vdisk(t, "info", out+".001"); code == 0 || !strings.Contains(stderr, "split.raw.002") {
		t.Errorf("missing piece: exit %d %q", code, stderr)
	}
	os.Rename(out+".002.moved", out+".002")
	qemutest.IO(t, "raw", out+".003", "write -P 9 1M 512")
	if stdout, _, code := vdisk(t, "verify", "--hash-log", out+".log", out+".001"); code != 1 || !strings.Contains(stdout, "split.raw.003: sha256 MISMATCH") {
		t.Errorf("changed piece: exit %d\n%s", code, stdout)
	}
	if _, stderr, code := vdisk(t, "convert", "-o", "split=1k", src, filepath.Join(dir, "x.raw")); code == 0 || !strings.Contains(stderr, "split") {
		t.Errorf("split=1k: exit %d %q", code, stderr)
	}
}
