package checksum

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
	_ "github.com/vdiskio/vdisk/qcow2"
	_ "github.com/vdiskio/vdisk/raw"
	_ "github.com/vdiskio/vdisk/vdi"
	_ "github.com/vdiskio/vdisk/vhd"
	_ "github.com/vdiskio/vdisk/vhdx"
	_ "github.com/vdiskio/vdisk/vmdk"
)

// blkhashPy is blkhash's reference construction (test/blkhash.py in
// gitlab.com/nirs/blkhash), run by python3 as an independent oracle.
const blkhashPy = `
import hashlib, struct, sys
h = hashlib.new(sys.argv[1]); n = 0
with open(sys.argv[2], "rb") as f:
    while True:
        b = f.read(65536)
        if not b: break
        h.update(hashlib.new(sys.argv[1], b).digest()); n += len(b)
h.update(struct.pack("<Q", n)); print(h.hexdigest())
`

func pyBlkhash(t *testing.T, algorithm, rawPath string) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found (the blkhash reference oracle)")
	}
	out, err := exec.Command(py, "-c", blkhashPy, algorithm, rawPath).Output()
	if err != nil {
		t.Fatalf("python3 blkhash: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func sha256sum(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("sha256sum", path).Output()
	if err != nil {
		t.Skipf("sha256sum: %v", err)
	}
	return strings.Fields(string(out))[0]
}

// makeRaw writes a raw disk of size bytes: random runs, explicit zeros and
// holes.
func makeRaw(t *testing.T, path string, size int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(13, 13))
	for _, r := range [][2]int64{{0, 70000}, {1 << 20, 3 << 20}, {9<<20 + 512, 4096}, {20 << 20, 1 << 20}, {size - 100000, 100000}} {
		buf := make([]byte, r[1])
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		if _, err := f.WriteAt(buf, r[0]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.WriteAt(make([]byte, 2<<20), 12<<20); err != nil { // explicit zeros
		t.Fatal(err)
	}
}

// TestOneDiskOneDigest: one disk stored by qemu-img as raw, qcow2 (several
// options, compressed, an overlay chain), vmdk, vhd, vhdx and vdi gives one
// block digest (python's blkhash reference of the raw export) and one linear
// digest (sha256sum of qemu-img's raw export).
func TestOneDiskOneDigest(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	dir := t.TempDir()
	const size = 32 << 20
	src := filepath.Join(dir, "src.raw")
	makeRaw(t, src, size)
	// The chain: an overlay over a qcow2 base, written by qemu-io; the
	// same write on a raw copy gives the expected disk.
	base := filepath.Join(dir, "base.qcow2")
	qemutest.Img(t, "convert", "-f", "raw", "-O", "qcow2", src, base)
	overlay := filepath.Join(dir, "overlay.qcow2")
	qemutest.Img(t, "create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", overlay)
	qemutest.IO(t, "qcow2", overlay, "write -P 0x55 1M 64k", "write -z 20M 128k")
	chainRaw := qemutest.ToRaw(t, "qcow2", overlay)

	wantBlock := pyBlkhash(t, "sha256", src)
	wantLinear := sha256sum(t, qemutest.ToRaw(t, "raw", src))
	cases := []struct {
		name, format string
		args         []string
	}{
		{"raw", "raw", nil},
		{"qcow2", "qcow2", nil},
		{"qcow2-4k-compat0.10", "qcow2", []string{"-o", "cluster_size=4096,compat=0.10"}},
		{"qcow2-extended_l2", "qcow2", []string{"-o", "extended_l2=on,cluster_size=128k"}},
		{"qcow2-zlib", "qcow2", []string{"-c"}},
		{"qcow2-zstd", "qcow2", []string{"-c", "-o", "compression_type=zstd"}},
		{"vmdk", "vmdk", nil},
		{"vmdk-stream", "vmdk", []string{"-o", "subformat=streamOptimized"}},
		{"vpc", "vpc", []string{"-o", "force_size=on"}},
		{"vpc-fixed", "vpc", []string{"-o", "subformat=fixed,force_size=on"}},
		{"vhdx", "vhdx", nil},
		{"vdi", "vdi", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".img")
			qemutest.Img(t, append(append([]string{"convert", "-f", "raw", "-O", tc.format}, tc.args...), src, path)...)
			checkDigests(t, path, wantBlock, wantLinear)
		})
	}
	t.Run("qcow2-chain", func(t *testing.T) {
		checkDigests(t, overlay, pyBlkhash(t, "sha256", chainRaw), sha256sum(t, chainRaw))
	})
}

func checkDigests(t *testing.T, path, wantBlock, wantLinear string) {
	t.Helper()
	img, err := formats.Open(context.Background(), path, formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	d, err := Block(context.Background(), img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d.Hex() != wantBlock {
		t.Errorf("%s block digest %s, blkhash reference %s", img.Format(), d.Hex(), wantBlock)
	}
	ds, err := Linear(context.Background(), img, []string{"sha256"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ds[0].Hex() != wantLinear {
		t.Errorf("%s linear sha256 %s, sha256sum of the raw export %s", img.Format(), ds[0].Hex(), wantLinear)
	}
}
