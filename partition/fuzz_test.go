package partition_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/vdiskio/vdisk/internal/fuzzpatch"
	"github.com/vdiskio/vdisk/partition"
)

// FuzzRead: any 64 KiB disk reads as a table or an error, never a panic, and
// every partition lies inside the disk.
func FuzzRead(f *testing.F) {
	const size = 64 << 10
	// Inputs are patches over small valid disks (fuzzpatch): a whole image
	// as the input is minimised for a minute each time the fuzzer finds
	// new coverage.
	var bases [][]byte
	for _, script := range []string{
		"label: dos\n1,20,83,*\n21,60,5\n22,10,82\n34,10,7\n",
		"label: gpt\n40,20,L\n60,20,U\n",
	} {
		if seed := sfdiskSeed(f, script, size); seed != nil {
			bases = append(bases, seed)
		}
	}
	empty := make([]byte, size)
	empty[510], empty[511] = 0x55, 0xAA
	empty[446+4], empty[446+8], empty[446+12] = 0xee, 1, 127
	bases = append(bases, empty)
	for _, s := range fuzzpatch.Seeds(bases) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		disk := fuzzpatch.Apply(bases, input)
		tab, err := partition.Read(bytesReader(disk), int64(len(disk)))
		if err != nil {
			return
		}
		for _, p := range tab.Partitions {
			if p.Start < 0 || p.Size < 0 || p.End() > int64(len(disk)) {
				t.Fatalf("partition %d at %d+%d outside a %d-byte disk", p.Number, p.Start, p.Size, len(disk))
			}
		}
	})
}

// sfdiskSeed partitions a small file with sfdisk (nil when sfdisk is
// missing: the crafted seeds still run).
func sfdiskSeed(f *testing.F, script string, size int64) []byte {
	path, err := exec.LookPath("sfdisk")
	if err != nil {
		return nil
	}
	p := filepath.Join(f.TempDir(), "seed.img")
	if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
		f.Fatal(err)
	}
	cmd := exec.Command(path, "-q", p)
	cmd.Stdin = stringsReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		f.Fatalf("sfdisk: %v\n%s", err, out)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		f.Fatal(err)
	}
	return b
}
