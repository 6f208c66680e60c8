package ewf

import (
	"context"
	"encoding/hex"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/convert"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
	_ "github.com/vdiskio/vdisk/qcow2"
	_ "github.com/vdiskio/vdisk/vhdx"
	_ "github.com/vdiskio/vdisk/vmdk"
)

// TestReadEwfacquireFormats: images ewfacquire writes in every format it
// offers, at every compression level, read byte-identically to ewfexport
// -f raw, with the case metadata given to ewfacquire and the digests
// ewfinfo shows.
func TestReadEwfacquireFormats(t *testing.T) {
	dir := t.TempDir()
	data := source(1<<20+7*512, 1)
	src := writeFile(t, filepath.Join(dir, "src.raw"), data)
	// encase7 and linen7 are EWF-E01 too; this ewfacquire writes them as
	// encase6 (it says so), so they add nothing here.
	formatsWanted := map[string]string{
		"ewf": "EWF", "smart": "SMART", "ftk": "FTK Imager", "encase2": "EnCase 2/3", "encase3": "EnCase 2/3",
		"encase4": "EnCase 4/5", "encase5": "EnCase 4/5", "encase6": "EnCase 6", "linen5": "linen 5",
		"linen6": "linen 6", "ewfx": "EWF-X",
	}
	levels := []string{"none", "empty-block", "fast", "best"}
	for format, guess := range formatsWanted {
		for _, level := range levels {
			t.Run(format+"-"+level, func(t *testing.T) {
				t.Parallel()
				first := acquire(t, src, filepath.Join(t.TempDir(), "img"), "-f", format, "-c", level, "-d", "sha1",
					"-C", "case 7", "-E", "ev-1", "-e", "J. Examiner", "-D", "a disk", "-N", "notes here")
				want := export(t, first)
				equalBytes(t, "ewfexport vs source", want, data)
				got := readAll(t, first, formats.OpenOptions{})
				equalBytes(t, "vdisk vs ewfexport", got, want)
				img, err := formats.Open(context.Background(), first, formats.OpenOptions{})
				if err != nil {
					t.Fatal(err)
				}
				defer img.Close()
				e := img.(*Image)
				if got := e.FileFormat(); got != guess {
					t.Errorf("file format guess %q, ewfacquire -f %s", got, format)
				}
				md := e.Metadata()
				if md.CaseNumber != "case 7" || md.EvidenceNumber != "ev-1" || md.Examiner != "J. Examiner" ||
					md.Description != "a disk" || md.Notes != "notes here" {
					t.Errorf("metadata %+v, want what ewfacquire was given", md)
				}
				info := tool(t, "ewfinfo", first)
				if got, want := hex.EncodeToString(e.StoredMD5()), ewfinfoField(info, "MD5"); got != want || got != md5hex(data) {
					t.Errorf("stored MD5 %s, ewfinfo %s, content %s", got, want, md5hex(data))
				}
				if want := ewfinfoField(info, "SHA1"); want != "" && hex.EncodeToString(e.StoredSHA1()) != want {
					t.Errorf("stored SHA-1 %x, ewfinfo %s", e.StoredSHA1(), want)
				}
				rep, err := e.VerifyDigests(context.Background(), nil)
				if err != nil || !rep.OK() {
					t.Errorf("VerifyDigests: %+v, %v", rep, err)
				}
			})
		}
	}
}

// TestReadSegmentsAndChunkSizes: multi-segment sets (more than 99 segment
// files, so the .EAA names are used) and other chunk sizes.
func TestReadSegmentsAndChunkSizes(t *testing.T) {
	dir := t.TempDir()
	data := source(3<<20, 2)
	src := writeFile(t, filepath.Join(dir, "src.raw"), data)
	cases := []struct {
		name  string
		chunk int64
		args  []string
	}{
		{"segments-1M", 32768, []string{"-f", "encase6", "-S", "1MiB", "-c", "none"}},
		{"segments-smart", 32768, []string{"-f", "smart", "-S", "1MiB", "-c", "none"}},
		{"segments-encase5", 32768, []string{"-f", "encase5", "-S", "1MiB", "-c", "fast"}},
		{"chunk-16-sectors", 8192, []string{"-f", "encase6", "-b", "16", "-c", "fast"}},
		{"chunk-1024-sectors", 512 << 10, []string{"-f", "encase6", "-b", "1024", "-c", "best"}},
		{"chunk-32768-sectors", 16 << 20, []string{"-f", "encase6", "-b", "32768", "-c", "fast"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			first := acquire(t, src, filepath.Join(dir, "img"), c.args...)
			got := readAll(t, first, formats.OpenOptions{})
			equalBytes(t, "vdisk vs ewfexport", got, export(t, first))
			equalBytes(t, "vdisk vs source", got, data)
			img, err := formats.Open(context.Background(), first, formats.OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			info := img.(formats.Informer).Info()
			d := info.Details.(*Details)
			want := [2]int64{int64(len(segmentFiles(t, dir))), c.chunk}
			if got := [2]int64{d.Segments, d.ChunkSize}; got != want || info.ClusterSize != c.chunk {
				t.Errorf("info %v, cluster size %d; want %v (the files ewfacquire wrote, its -b)", got, info.ClusterSize, want)
			}
		})
	}
}

// TestManySegmentNames: ewfacquire's names past .E99 are the names vdisk
// looks for, and the 120-segment set reads whole.
func TestManySegmentNames(t *testing.T) {
	dir := t.TempDir()
	if raceEnabled {
		t.Skip("105 MiB through the race detector takes minutes; the plain run covers it")
	}
	data := make([]byte, 105<<20) // incompressible, so that every 1 MiB is a segment
	rand.NewChaCha8([32]byte{3}).Read(data)
	src := writeFile(t, filepath.Join(dir, "src.raw"), data)
	out := t.TempDir()
	first := acquire(t, src, filepath.Join(out, "many"), "-f", "encase6", "-S", "1MiB", "-c", "none")
	files := segmentFiles(t, out)
	if len(files) <= 100 {
		t.Fatalf("ewfacquire wrote %d segments, want more than 100", len(files))
	}
	for i, f := range files {
		name, err := segmentName(first, i+1)
		if err != nil || filepath.Base(name) != f {
			t.Fatalf("segment %d: ewfacquire named it %s, vdisk %s (%v)", i+1, f, name, err)
		}
	}
	got := readAll(t, first, formats.OpenOptions{})
	equalBytes(t, "vdisk vs source", got, data)
}

func TestSegmentName(t *testing.T) {
	for n, want := range map[int]string{1: "a.E01", 9: "a.E09", 99: "a.E99", 100: "a.EAA", 101: "a.EAB",
		125: "a.EAZ", 126: "a.EBA", 775: "a.EZZ", 776: "a.FAA", maxSegments: "a.ZZZ"} {
		if got, err := segmentName("a.E01", n); got != want || err != nil {
			t.Errorf("segment %d: %q, %v; want %s", n, got, err, want)
		}
	}
	if got, _ := segmentName("x/b.e01", 100); got != "x/b.eaa" {
		t.Errorf("lower case: %s", got)
	}
	if got, _ := segmentName("c.s01", 2); got != "c.s02" {
		t.Errorf("smart: %s", got)
	}
	for _, bad := range []struct {
		name string
		n    int
	}{{"a.E01", maxSegments + 1}, {"a.img", 2}, {"a.s01", 99 + 8*676 + 1}} {
		if got, err := segmentName(bad.name, bad.n); err == nil {
			t.Errorf("segment %d of %s: %q, want an error", bad.n, bad.name, got)
		}
	}
}

// TestWriteVerifiedByEwfTools: every image vdisk writes passes ewfverify,
// ewfinfo shows its metadata and the source's MD5 and SHA-1, and
// ewfexport reads the source back; segment files are named as ewfacquire
// names them.
func TestWriteVerifiedByEwfTools(t *testing.T) {
	dir := t.TempDir()
	data := source(5<<20, 4)
	src := writeFile(t, filepath.Join(dir, "src.raw"), data)
	meta := "case_number=C-42,examiner=Jane Doe,evidence_number=EV 7,description=test disk,notes=seized 2026"
	cases := []struct {
		name, opts string
		segments   int // 0: more than one
	}{
		{"fast", "compression=fast", 1},
		{"best", "compression=best", 1},
		{"none", "compression=none", 1},
		{"empty-block", "compression=empty-block", 1},
		{"segments", "compression=none,segment_size=1M", 0},
		{"chunk-8K", "compression=fast,chunk_size=8K", 1},
		{"chunk-1M-segments", "compression=none,chunk_size=1M,segment_size=1M", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := t.TempDir()
			dst := filepath.Join(out, "disk.E01")
			vdiskConvert(t, src, dst, c.opts+","+meta)
			files := segmentFiles(t, out)
			if c.segments == 1 && len(files) != 1 || c.segments == 0 && len(files) < 2 {
				t.Fatalf("segment files %v", files)
			}
			for i, f := range files {
				if want, _ := segmentName(dst, i+1); f != filepath.Base(want) {
					t.Fatalf("segment %d is %s, want %s", i+1, f, filepath.Base(want))
				}
			}
			v := qemutest.Exec(t, "ewfverify", "-q", dst)
			if v.Code != 0 || !strings.Contains(v.Stdout, "ewfverify: SUCCESS") {
				t.Fatalf("ewfverify: exit %d\n%s%s", v.Code, v.Stdout, v.Stderr)
			}
			info := tool(t, "ewfinfo", dst)
			for k, want := range map[string]string{"Case number": "C-42", "Examiner name": "Jane Doe",
				"Evidence number": "EV 7", "Description": "test disk", "Notes": "seized 2026",
				"MD5": md5hex(data), "SHA1": sha1hex(data), "Software version used": Software} {
				if got := ewfinfoField(info, k); got != want {
					t.Errorf("ewfinfo %s: %q, want %q", k, got, want)
				}
			}
			img, err := formats.Open(context.Background(), dst, formats.OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			if got, want := img.(formats.Informer).Info().Details.(*Details).SetIdentifier, ewfinfoField(info, "Set identifier"); got != want {
				t.Errorf("info %s, ewfinfo %s", got, want)
			}
			equalBytes(t, "ewfexport of vdisk's image", export(t, dst), data)
			equalBytes(t, "vdisk reading its own image", readAll(t, dst, formats.OpenOptions{}), data)
		})
	}
}

// TestConvertToVMFormats: the investigator's use, an E01 booted as a VM
// disk: ewfacquire's image converted by vdisk to qcow2, vmdk and vhdx, which
// qemu-img compares equal to the source disk.
func TestConvertToVMFormats(t *testing.T) {
	dir := t.TempDir()
	data := source(2<<20, 13)
	src := writeFile(t, filepath.Join(dir, "src.raw"), data)
	first := acquire(t, src, filepath.Join(dir, "evidence"), "-f", "encase6", "-c", "fast", "-S", "1MiB")
	for _, f := range []string{"qcow2", "vmdk", "vhdx"} {
		out := filepath.Join(dir, "vm."+f)
		if err := convert.Run(context.Background(), convert.Job{Source: first, Target: out, Format: f}); err != nil {
			t.Fatalf("convert to %s: %v", f, err)
		}
		if r := qemutest.Compare(t, "raw", src, f, out); r.Code != 0 {
			t.Errorf("qemu-img compare %s: exit %d %s%s", f, r.Code, r.Stdout, r.Stderr)
		}
	}
}
