package vhdx

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

func TestCorpus(t *testing.T) {
	for _, name := range []string{"iotest-dynamic-1G.vhdx", "test-disk2vhd.vhdx", "iotest-dirtylog-10G-4M.vhdx"} {
		t.Run(name, func(t *testing.T) {
			path, digest := qemutest.Corpus(t, name)
			img := openPath(t, path, formats.OpenOptions{})
			defer img.Close()
			if img.Size() != digest.VirtualSize {
				t.Errorf("size %d, want %d", img.Size(), digest.VirtualSize)
			}
			if got := qemutest.BlockSHA(t, img); got != digest.SHA {
				t.Errorf("digest %s, want %s", got, digest.SHA)
			}
		})
	}
}

// qemuImages are images qemu-img makes, with qemu-io writes on top.
var qemuImages = []struct {
	name string
	size string
	opts string
	io   []string
}{
	{"dynamic-default", "64M", "", []string{"write -P 0xa5 0 1M", "write -P 0x96 33M 3M", "write -P 0x11 60M 512"}},
	{"dynamic-odd-size", "50000896", "", []string{"write -P 0x42 0 4096", "write -P 0x43 49999872 1024"}},
	{"fixed", "24M", "subformat=fixed", []string{"write -P 0x77 1M 2M", "write -P 0x78 23M 1M"}},
	{"fixed-odd", "9437696", "subformat=fixed", []string{"write -P 0x11 9436672 1024"}},
	{"bs1M", "20M", "block_size=1M", []string{"write -P 0x55 512 3M", "write -P 0x56 19M 1M"}},
	{"bs2M-4M-log", "20M", "block_size=2M,log_size=4M", []string{"write -P 0x57 5M 5M"}},
	{"log-1536k", "20M", "log_size=1536K", []string{"write -P 0x64 1M 1M"}},
	{"fixed-bs1M-log2M", "6M", "subformat=fixed,block_size=1M,log_size=2M", []string{"write -P 0x65 0 6M"}},
	{"bs32M", "64M", "block_size=32M", []string{"write -P 0x58 31M 2M"}},
	{"bs4M-16M", "40M", "block_size=4M", []string{"write -P 0x60 3M 2M"}},
	{"bs16M", "48M", "block_size=16M", []string{"write -P 0x61 15M 2M"}},
	{"bs64M", "64M", "block_size=64M", []string{"write -P 0x62 63M 1M"}},
	{"bs128M", "200M", "block_size=128M", []string{"write -P 0x63 127M 2M"}},
	{"bs256M", "64M", "block_size=256M", []string{"write -P 0x59 7M 1M"}},
	{"bs512M-clamped", "16M", "block_size=512M", []string{"write -P 0x5a 0 1M"}},
	{"state-zero-off", "32M", "block_state_zero=off", []string{"write -P 0x5b 8M 1M", "write -z 16M 8M"}},
	{"zero-write", "32M", "", []string{"write -P 0x5c 0 16M", "write -z 4M 8M"}},
	{"empty", "0", "", nil},
}

func TestReadQemuImages(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	for _, tc := range qemuImages {
		t.Run(tc.name, func(t *testing.T) {
			path := tempPath(t, tc.name+".vhdx")
			args := []string{"create", "-q", "-f", "vhdx"}
			if tc.opts != "" {
				args = append(args, "-o", tc.opts)
			}
			qemutest.Img(t, append(args, path, tc.size)...)
			if len(tc.io) > 0 {
				qemutest.IO(t, "vhdx", path, tc.io...)
			}
			raw := qemutest.ToRaw(t, "vhdx", path)
			img := openPath(t, path, formats.OpenOptions{})
			defer img.Close()
			requireSameAsRaw(t, img, raw)
			info := qemutest.Info(t, "vhdx", path)
			if cs, _ := info["cluster-size"].(float64); int64(cs) != img.Info().ClusterSize {
				t.Errorf("cluster size %d, qemu says %v", img.Info().ClusterSize, info["cluster-size"])
			}
		})
	}
}

// TestAutoBlockSizeMatchesQemu: block_size=0 picks what qemu-img picks.
func TestAutoBlockSizeMatchesQemu(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	for _, size := range []int64{64 << 20, 1 << 30, 1<<30 + 512, 100 << 30, 100<<30 + 512, 32 << 40, 32<<40 + 512} {
		path := tempPath(t, "auto.vhdx")
		qemutest.Img(t, "create", "-q", "-f", "vhdx", path, fmt.Sprint(size))
		info := qemutest.Info(t, "vhdx", path)
		ours, err := blockSizeFor(0, size)
		if cs, _ := info["cluster-size"].(float64); err != nil || int64(cs) != ours {
			t.Errorf("size %d: qemu picks %v, vdisk %d (%v)", size, info["cluster-size"], ours, err)
		}
	}
}

// TestLargeSparse writes a 64 TiB disk (the format's maximum) and checks
// qemu accepts it and both read the few written bytes.
func TestLargeSparse(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	path := tempPath(t, "big.vhdx")
	w := create(t, path, 64<<40, "")
	if _, err := w.WriteAt(filled(4096, 0x5a), 40<<40+12345); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	qemutest.RequireClean(t, "vhdx", path)
	if info := qemutest.Info(t, "vhdx", path); info["virtual-size"].(float64) != 64<<40 {
		t.Errorf("qemu reads virtual size %v", info["virtual-size"])
	}
	qemutest.IO(t, "vhdx", path, "read -P 0x5a 43980465123385 4096", "read -P 0 0 4096")
	img := openPath(t, path, formats.OpenOptions{})
	defer img.Close()
	exts, err := img.Extents(0, img.Size())
	if err != nil {
		t.Fatal(err)
	}
	var data int64
	for _, e := range exts {
		if e.Kind == formats.Data {
			data += e.Length
		}
	}
	if data != 64<<20 { // one 64 MiB block (qemu's and vdisk's choice above 32 TiB)
		t.Errorf("data extents: %+v", exts)
	}
	buf := make([]byte, 4096)
	if _, err := img.ReadAt(buf, 40<<40+12345); err != nil || !bytes.Equal(buf, filled(4096, 0x5a)) {
		t.Fatalf("read back: %v", err)
	}
}
