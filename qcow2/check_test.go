package qcow2

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

// layout is what the damage tests need to know about an image.
type layout struct {
	cs       int64
	l1Off    int64
	l2Off    int64 // first L2 table
	blockOff int64 // first refcount block
	dataOff  int64 // host offset of guest cluster 0
	data1Off int64 // host offset of guest cluster 1
	fileSize int64
}

func readLayout(t *testing.T, path string) layout {
	t.Helper()
	img := openPath(t, path, formats.OpenOptions{}).(*Image)
	var l layout
	l.cs = img.clusterSize
	l.l1Off = int64(img.hdr.L1TableOffset)
	l.l2Off = int64(img.l1[0] & offsetMask)
	rt := make([]byte, 8)
	img.f.ReadAt(rt, int64(img.hdr.RefcountTableOffset))
	l.blockOff = int64(binary.BigEndian.Uint64(rt))
	e0, _, _ := img.lookup(0)
	e1, _, _ := img.lookup(1)
	l.dataOff, l.data1Off = int64(e0&offsetMask), int64(e1&offsetMask)
	l.fileSize, _ = img.f.Size()
	return l
}

func patch(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// qemuCheck is qemu-img check's JSON answer and exit code.
type qemuCheck struct {
	Code               int
	CheckErrors        int64 `json:"check-errors"`
	Corruptions        int64 `json:"corruptions"`
	Leaks              int64 `json:"leaks"`
	CorruptionsFixed   int64 `json:"corruptions-fixed"`
	LeaksFixed         int64 `json:"leaks-fixed"`
	ImageEndOffset     int64 `json:"image-end-offset"`
	TotalClusters      int64 `json:"total-clusters"`
	AllocatedClusters  int64 `json:"allocated-clusters"`
	FragmentedClusters int64 `json:"fragmented-clusters"`
	CompressedClusters int64 `json:"compressed-clusters"`
}

func runQemuCheck(t *testing.T, path string, args ...string) qemuCheck {
	t.Helper()
	r := qemutest.Exec(t, "qemu-img", append(append([]string{"check", "--output=json"}, args...), path)...)
	var q qemuCheck
	if r.Code == 1 && r.Stdout == "" {
		return qemuCheck{Code: 1, CheckErrors: 1}
	}
	if err := json.Unmarshal([]byte(r.Stdout), &q); err != nil {
		t.Fatalf("qemu-img check output %q: %v (%s)", r.Stdout, err, r.Stderr)
	}
	q.Code = r.Code
	return q
}

// exitCode is qemu-img check's exit code for a report.
func exitCode(r *formats.CheckReport) int {
	switch {
	case r.CheckErrors > 0:
		return 1
	case r.Corruptions > 0:
		return 2
	case r.Leaks > 0:
		return 3
	}
	return 0
}

func vdiskCheck(t *testing.T, path string, opts formats.CheckOptions) qemuCheck {
	t.Helper()
	img, err := formats.Open(context.Background(), path, formats.OpenOptions{Writable: opts.RepairLeaks || opts.RepairAll})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	r, err := img.(formats.Checker).Check(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("vdisk messages: %q", r.Messages)
	return qemuCheck{Code: exitCode(r), CheckErrors: r.CheckErrors, Corruptions: r.Corruptions, Leaks: r.Leaks,
		CorruptionsFixed: r.CorruptionsFixed, LeaksFixed: r.LeaksFixed, ImageEndOffset: r.ImageEndOffset,
		TotalClusters: r.TotalClusters, AllocatedClusters: r.AllocatedClusters,
		FragmentedClusters: r.FragmentedClusters, CompressedClusters: r.CompressedClusters}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
}

func TestCheckAgreesWithQemu(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	damages := map[string]func(t *testing.T, path string, l layout){
		"clean": func(*testing.T, string, layout) {},
		"leaked cluster": func(t *testing.T, path string, l layout) {
			// One more cluster at the end of the file with refcount 1.
			extra := (l.fileSize + l.cs - 1) / l.cs
			if err := os.Truncate(path, (extra+1)*l.cs); err != nil {
				t.Fatal(err)
			}
			patch(t, path, l.blockOff+2*extra, be16(1))
		},
		"refcount too low": func(t *testing.T, path string, l layout) {
			patch(t, path, l.blockOff+2*(l.dataOff/l.cs), be16(0))
		},
		"refcount low not zero": func(t *testing.T, path string, l layout) {
			// A data cluster referenced twice with refcount 1.
			patch(t, path, l.l2Off+8, be64(uint64(l.dataOff)|oflagCopied))
		},
		"L2 entry past EOF": func(t *testing.T, path string, l layout) {
			past := (l.fileSize + 10*l.cs) / l.cs * l.cs
			patch(t, path, l.l2Off+8, be64(uint64(past)|oflagCopied))
		},
		"overlapping L2": func(t *testing.T, path string, l layout) {
			// Guest cluster 1's data is the L2 table itself.
			patch(t, path, l.l2Off+8, be64(uint64(l.l2Off)|oflagCopied))
		},
		"unaligned L2 offset": func(t *testing.T, path string, l layout) {
			patch(t, path, l.l1Off, be64(uint64(l.l2Off+512)|oflagCopied))
		},
	}
	for name, damage := range damages {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "d.qcow2")
			qemutest.Img(t, "create", "-q", "-f", "qcow2", path, "64M")
			qemutest.IO(t, "qcow2", path, "write -P 1 0 256k", "write -P 2 10M 64k", "write -c -P 3 20M 64k")
			damage(t, path, readLayout(t, path))
			want := runQemuCheck(t, path)
			got := vdiskCheck(t, path, formats.CheckOptions{})
			if got != want {
				t.Fatalf("check: vdisk %+v\nqemu  %+v", got, want)
			}
			for _, mode := range []string{"leaks", "all"} {
				qpath := filepath.Join(dir, "q-"+mode+".qcow2")
				vpath := filepath.Join(dir, "v-"+mode+".qcow2")
				copyFile(t, path, qpath)
				copyFile(t, path, vpath)
				wantFix := runQemuCheck(t, qpath, "-r", mode)
				gotFix := vdiskCheck(t, vpath, formats.CheckOptions{RepairLeaks: true, RepairAll: mode == "all"})
				if wantFix.Code == 1 {
					if gotFix.Code != 1 {
						t.Errorf("-r %s: qemu fails, vdisk %+v", mode, gotFix)
					}
					continue
				}
				if gotFix.Code != wantFix.Code || gotFix.LeaksFixed != wantFix.LeaksFixed ||
					gotFix.Leaks != wantFix.Leaks || gotFix.Corruptions != wantFix.Corruptions {
					t.Errorf("-r %s: vdisk %+v\nqemu  %+v", mode, gotFix, wantFix)
				}
				after := runQemuCheck(t, vpath)
				if mode == "all" && after.Code != 0 && wantFix.Code == 0 {
					t.Errorf("-r all: qemu-img check after vdisk's repair: %+v", after)
				}
			}
		})
	}
}

func TestCheckStatsAgreeWithQemu(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	for i, opt := range []string{"cluster_size=512", "extended_l2=on", "refcount_bits=1", "compression_type=zstd",
		"compat=0.10,cluster_size=4k", "refcount_bits=64,cluster_size=2M"} {
		t.Run(opt, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), fmt.Sprintf("s%d.qcow2", i))
			qemutest.Img(t, "create", "-q", "-f", "qcow2", "-o", opt, path, "8M")
			comp := "write -c -P 2 2M 64k"
			if strings.Contains(opt, "2M") {
				comp = "write -c -P 2 2M 2M"
			}
			qemutest.IO(t, "qcow2", path, "write -P 1 0 300k", comp, "write -P 3 5M 70k")
			if !strings.Contains(opt, "refcount_bits=1") {
				qemutest.Img(t, "snapshot", "-c", "s", path)
			}
			qemutest.IO(t, "qcow2", path, "write -P 4 100k 10k", "write -z 5M 64k")
			if !strings.Contains(opt, "compat=0.10") {
				qemutest.Img(t, "bitmap", "--add", path, "bm")
			}
			want := runQemuCheck(t, path)
			got := vdiskCheck(t, path, formats.CheckOptions{})
			if got != want {
				t.Fatalf("vdisk %+v\nqemu  %+v", got, want)
			}
		})
	}
}
