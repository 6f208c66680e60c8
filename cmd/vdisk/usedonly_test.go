package main

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// deletedDataDisk is partitionedDisk with 12 MiB of random data written
// into each file system and then deleted (the blocks are free but still
// hold the data), plus a third partition of random bytes and no file
// system, which --used-only must copy whole.
func deletedDataDisk(t *testing.T) (disk, fatFS, extFS string) {
	src := fileTree(t)
	junk := make([]byte, 12<<20)
	rng := rand.New(rand.NewPCG(9, 9))
	for i := range junk {
		junk[i] = byte(rng.Uint32())
	}
	os.WriteFile(filepath.Join(src, "junk.bin"), junk, 0o644)
	disk, fatFS, extFS = partitionedDisk(t, src)
	runTool(t, "mdel", "-i", fatFS, "::junk.bin")
	runTool(t, "debugfs", "-w", "-R", "rm /junk.bin", extFS)
	// Put the changed file systems back, and random bytes after them.
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i, fs := range []string{fatFS, extFS} {
		b, _ := os.ReadFile(fs)
		f.WriteAt(b, int64(2048*512+i*40<<20))
	}
	runTool(t, "sgdisk", "-n", "3:0:+4M", "-t", "3:8300", disk)
	f.WriteAt(junk[:4<<20], 2048*512+80<<20)
	return disk, fatFS, extFS
}

func TestConvertUsedOnly(t *testing.T) {
	t.Parallel()
	disk, fatFS, extFS := deletedDataDisk(t)
	dir := t.TempDir()
	plain, used := filepath.Join(dir, "plain.qcow2"), filepath.Join(dir, "used.qcow2")
	if _, errs, code := vdisk(t, "convert", "-O", "qcow2", disk, plain); code != 0 {
		t.Fatal(errs)
	}
	_, errs, code := vdisk(t, "convert", "--used-only", "-O", "qcow2", disk, used)
	if code != 0 {
		t.Fatal(errs)
	}
	// The report names what was skipped: both deleted 12 MiB files.
	m := regexp.MustCompile(`(\d+) file systems read, (\d+) partitions copied whole; \d+ bytes free, (\d+) of them stored and skipped`).FindStringSubmatch(errs)
	if m == nil || m[1] != "2" || m[2] != "1" {
		t.Fatalf("report: %q", errs)
	}
	skipped, _ := strconv.ParseInt(m[3], 10, 64)
	if skipped < 24<<20 {
		t.Errorf("skipped %d bytes, want at least the 24 MiB deleted", skipped)
	}
	ps, _ := os.Stat(plain)
	us, _ := os.Stat(used)
	if us.Size() > ps.Size()-20<<20 {
		t.Errorf("used-only output %d bytes, plain %d: not 20 MiB smaller", us.Size(), ps.Size())
	}
	qemutest.RequireClean(t, "qcow2", used)
	// Each file system in the output checks clean and holds the same files.
	raw := qemutest.ToRaw(t, "qcow2", used)
	for n, fs := range map[int]string{1: fatFS, 2: extFS} {
		part := filepath.Join(dir, "part"+strconv.Itoa(n))
		if _, errs, code := vdisk(t, "convert", "-f", "raw", "-O", "raw", raw+":"+strconv.Itoa(n), part); code != 0 {
			t.Fatal(errs)
		}
		if n == 1 {
			out, err := exec.Command(qemutest.Tool(t, "fsck.fat"), "-n", part).CombinedOutput()
			if err != nil {
				t.Errorf("fsck.fat -n: %v\n%s", err, out)
			}
			if want, got := treeOf(t, mtoolsTree(t, fs)), treeOf(t, mtoolsTree(t, part)); want.listing != got.listing || len(got.sums) < 4 {
				t.Errorf("FAT files differ:\n%s\nvs\n%s", want.listing, got.listing)
			}
		} else {
			out, err := exec.Command(qemutest.Tool(t, "e2fsck"), "-fn", part).CombinedOutput()
			if err != nil {
				t.Errorf("e2fsck -fn: %v\n%s", err, out)
			}
			want, got := treeOf(t, debugfsTree(t, fs)), treeOf(t, debugfsTree(t, part))
			if want.listing != got.listing || len(got.sums) < 4 {
				t.Errorf("ext4 files differ:\n%s\nvs\n%s", want.listing, got.listing)
			}
			for k, v := range want.sums {
				if got.sums[k] != v {
					t.Errorf("ext4 file %s differs", k)
				}
			}
		}
	}
	// The partition without a file system is copied whole.
	a, _ := os.ReadFile(disk)
	b, _ := os.ReadFile(raw)
	lo, hi := 2048*512+80<<20, 2048*512+84<<20
	if !bytes.Equal(a[lo:hi], b[lo:hi]) {
		t.Error("partition 3 (no file system) was not copied whole")
	}
	// Refused with forensic copies.
	for _, args := range [][]string{{"--hash", "sha256"}, {"--salvage"}} {
		_, errs, code := vdisk(t, append(append([]string{"convert", "--used-only"}, args...), disk, filepath.Join(dir, "x"))...)
		if code != 1 || !strings.Contains(errs, "--used-only") {
			t.Errorf("--used-only %v: exit %d %s", args, code, errs)
		}
	}
}
