package main

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// TestMain lets the test binary act as the vdisk command (for tests that
// signal a real process): with VDISK_TEST_MAIN=1 it runs the CLI.
func TestMain(m *testing.M) {
	if os.Getenv("VDISK_TEST_MAIN") == "1" {
		os.Exit(runAs(progName(os.Args[0]), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// vdisk runs the CLI in-process and returns stdout, stderr and the exit code.
func vdisk(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return out.String(), errb.String(), code
}

// sparseRaw makes a 64 MiB raw file with three data regions (as qemu-img.md's
// examples) using qemu-io.
func sparseRaw(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "base.raw")
	qemutest.Img(t, "create", "-q", "-f", "raw", path, "64M")
	qemutest.IO(t, "raw", path, "write -P 0x5a 0 4k", "write -P 0xa5 10M 2M", "write -P 0x11 40000k 3k")
	return path
}

func TestOutputsMatchQemuForRaw(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := sparseRaw(t, dir)
	for _, args := range [][]string{
		{"info", "--output=json", path},
		{"info", path},
		{"map", "--output=json", path},
		{"map", path},
		{"measure", "--output=json", "-O", "raw", path},
		{"measure", "-O", "raw", "--size", "1G"},
		{"measure", "--output=json", "-O", "raw", "--size", "3G"},
	} {
		want := qemutest.Img(t, args...)
		got, stderr, code := vdisk(t, args...)
		if code != 0 || got != want {
			t.Errorf("vdisk %s: exit %d, stderr %q\n got: %q\nwant: %q", strings.Join(args, " "), code, stderr, got, want)
		}
	}
}

func TestConvertRawMatchesQemu(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := sparseRaw(t, dir)
	ours, theirs := filepath.Join(dir, "ours.raw"), filepath.Join(dir, "theirs.raw")
	if _, stderr, code := vdisk(t, "convert", "-O", "raw", src, ours); code != 0 {
		t.Fatalf("convert: %d %s", code, stderr)
	}
	qemutest.Img(t, "convert", "-f", "raw", "-O", "raw", src, theirs)
	qemutest.RequireSame(t, "raw", theirs, "raw", ours)
	qi, vi := qemutest.Info(t, "raw", theirs), qemutest.Info(t, "raw", ours)
	if qi["actual-size"] != vi["actual-size"] {
		t.Errorf("allocated: vdisk %v, qemu-img %v", vi["actual-size"], qi["actual-size"])
	}
}

func TestConvertIntoExisting(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := sparseRaw(t, dir)
	dst := filepath.Join(dir, "existing.raw")
	qemutest.Img(t, "create", "-q", "-f", "raw", dst, "64M")
	qemutest.IO(t, "raw", dst, "write -P 0x77 0 64M")
	if _, stderr, code := vdisk(t, "convert", "-n", "-O", "raw", src, dst); code != 0 {
		t.Fatalf("convert -n: %d %s", code, stderr)
	}
	qemutest.RequireSame(t, "raw", src, "raw", dst)
	if _, stderr, code := vdisk(t, "convert", "--target-is-zero", "-O", "raw", src, dst); code != 1 || !strings.Contains(stderr, "requires use of -n") {
		t.Errorf("--target-is-zero without -n: %d %q", code, stderr)
	}
}

func TestCompareExitCodes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a := sparseRaw(t, dir)
	b := filepath.Join(dir, "b.raw")
	qemutest.Img(t, "convert", "-O", "raw", a, b)
	bigger := filepath.Join(dir, "bigger.raw")
	qemutest.Img(t, "convert", "-O", "raw", a, bigger)
	qemutest.Img(t, "resize", "-f", "raw", bigger, "65M")
	for _, tc := range []struct {
		setup func()
		args  []string
		code  int
		out   string
	}{
		{args: []string{"compare", a, b}, code: 0, out: "Images are identical.\n"},
		{args: []string{"compare", a, bigger}, code: 0, out: "Warning: Image size mismatch!\nImages are identical.\n"},
		{args: []string{"compare", "-s", a, bigger}, code: 1, out: "Strict mode: Image size mismatch!\n"},
		{args: []string{"compare", a, filepath.Join(dir, "missing")}, code: 2},
		{setup: func() { qemutest.IO(t, "raw", b, "write -P 1 1M 1") }, args: []string{"compare", a, b}, code: 1, out: "Content mismatch at offset 1048576!\n"},
		{setup: func() { qemutest.IO(t, "raw", bigger, "write -P 1 64M 1") }, args: []string{"compare", a, bigger}, code: 1, out: "Warning: Image size mismatch!\nContent mismatch at offset 67108864!\n"},
	} {
		if tc.setup != nil {
			tc.setup()
		}
		q := qemutest.Exec(t, "qemu-img", tc.args...)
		out, _, code := vdisk(t, tc.args...)
		if code != tc.code || q.Code != tc.code {
			t.Errorf("%v: vdisk exit %d, qemu-img %d, want %d", tc.args, code, q.Code, tc.code)
		}
		if tc.out != "" && (out != tc.out || q.Stdout != tc.out) {
			t.Errorf("%v: vdisk said %q, qemu-img %q, want %q", tc.args, out, q.Stdout, tc.out)
		}
	}
}

// TestBadInput: every bad input is one line on stderr and exit 1.
func TestBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := sparseRaw(t, dir)
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.raw")
	if err := os.Symlink(src, link); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.img")
	for _, args := range [][]string{
		{"info", filepath.Join(dir, "missing")},
		{"info", dir},
		{"convert", "-O", "nosuch", src, out},
		{"convert", "-o", "nosuch=1", src, out},
		{"convert", "-o", "preallocation", src, out},
		{"convert", "-o", "preallocation=sometimes", src, out},
		{"convert", "-S", "12Q", src, out},
		{"convert", "-S", "100", src, out},
		{"convert", "-m", "65", src, out},
		{"convert", "-m", "0", src, out},
		{"convert", src, src},
		{"convert", src, link},
		{"convert", "-f", "qcow3", src, out},
		{"create", "-f", "raw", out, "12Q"},
		{"create", "-f", "raw", out, "8E"},
		{"create", "-f", "raw", out, "99999999999999999999"},
		{"create", "-f", "raw", out, "--", "-1"},
		{"create", "-f", "raw", "-o", "size=-5", out},
		{"create", "-f", "raw", out},
		{"create", "-f", "nosuch", out, "1M"},
		{"map", "--output=xml", src},
		{"resize", src, "-1G"},
		{"resize", src, "+99999999999E"},
		{"check", "-r", "sometimes", src},
	} {
		stdout, stderr, code := vdisk(t, args...)
		lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
		if code != 1 || len(lines) != 1 || !strings.HasPrefix(stderr, "vdisk: ") {
			t.Errorf("vdisk %s: exit %d, stderr %q (stdout %q); want exit 1 and one line", strings.Join(args, " "), code, stderr, stdout)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("vdisk %s left %s", strings.Join(args, " "), out)
			os.Remove(out)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 3 {
		t.Errorf("bad inputs left files: %v", entries)
	}
}

func TestCheckUnsupportedExit63(t *testing.T) {
	t.Parallel()
	src := sparseRaw(t, t.TempDir())
	_, stderr, code := vdisk(t, "check", src)
	if code != 63 || !strings.Contains(stderr, "does not support checks") {
		t.Fatalf("check raw: exit %d %q, want 63", code, stderr)
	}
}

func TestCreateAndOptionsHelp(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "c.raw")
	out, stderr, code := vdisk(t, "create", "-f", "raw", path, "1000001")
	if code != 0 || out != "Formatting '"+path+"', fmt=raw size=1000001\n" {
		t.Fatalf("create: %d %q %q", code, out, stderr)
	}
	info := qemutest.Info(t, "raw", path)
	if info["virtual-size"].(float64) != 1000448 {
		t.Errorf("size %v, want 1000448 (rounded up to a sector as qemu does)", info["virtual-size"])
	}
	help, _, code := vdisk(t, "create", "-f", "raw", "-o", "help")
	if code != 0 || !strings.Contains(help, "preallocation=<str>") || !strings.Contains(help, "size=<size>") {
		t.Errorf("-o help: %d %q", code, help)
	}
	if v, _, code := vdisk(t, "--version"); code != 0 || !strings.Contains(v, version) {
		t.Errorf("--version: %d %q", code, v)
	}
}

func TestResize(t *testing.T) {
	t.Parallel()
	path := sparseRaw(t, t.TempDir())
	for _, tc := range []struct {
		args []string
		size float64
	}{
		{[]string{"resize", path, "+1M"}, 65 << 20},
		{[]string{"resize", "--shrink", path, "-2M"}, 63 << 20},
		{[]string{"resize", path, "80M"}, 80 << 20},
	} {
		if out, stderr, code := vdisk(t, tc.args...); code != 0 || out != "Image resized.\n" {
			t.Fatalf("%v: %d %q %q", tc.args, code, out, stderr)
		}
		if got := qemutest.Info(t, "raw", path)["virtual-size"].(float64); got != tc.size {
			t.Errorf("%v: size %v, want %v", tc.args, got, tc.size)
		}
	}
}

// TestOutputsMatchQemuPerFormat: for images qemu-img makes, vdisk's map
// and info print what qemu-img prints, except where vdisk says more on
// purpose: VHD and VDI info add format-specific data; VHDX map reports the
// BAT (qemu: all data); flat VMDK holes are zero without data (qemu: both).
func TestOutputsMatchQemuPerFormat(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	base := sparseRaw(t, dir)
	for _, tc := range []struct {
		format     string
		opts       string
		info, maps bool
	}{
		{"qcow2", "", true, true},
		{"qcow2", "compat=0.10,cluster_size=4k", true, true},
		{"vmdk", "", true, true},
		{"vmdk", "subformat=monolithicFlat", true, false},
		{"vpc", "", false, true},
		{"vdi", "", false, true},
	} {
		path := filepath.Join(dir, "img-"+tc.format+strings.ReplaceAll(tc.opts, ",", "_"))
		args := []string{"convert", "-O", tc.format}
		if tc.opts != "" {
			args = append(args, "-o", tc.opts)
		}
		qemutest.Img(t, append(args, base, path)...)
		var checks [][]string
		if tc.maps {
			checks = append(checks, []string{"map", "--output=json", path})
		}
		if tc.info {
			checks = append(checks, []string{"info", "--output=json", path}, []string{"info", path})
		}
		for _, c := range checks {
			want := qemutest.Img(t, c...)
			got, stderr, code := vdisk(t, c...)
			if code != 0 || got != want {
				t.Errorf("%s %s: vdisk %s: exit %d %s\n got: %s\nwant: %s", tc.format, tc.opts, c[0], code, stderr, got, want)
			}
		}
	}
}

// TestExplicitFormatContradicted: -f raw on a fixed VHD is refused (naming
// both formats) unless --force-format; a fixed VHD holding an ISO is a VHD.
func TestExplicitFormatContradicted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	vhd := filepath.Join(dir, "f.vhd")
	qemutest.Img(t, "create", "-q", "-f", "vpc", "-o", "subformat=fixed", vhd, "8M")
	_, stderr, code := vdisk(t, "info", "-f", "raw", vhd)
	if code != 1 || !strings.Contains(stderr, `"raw"`) || !strings.Contains(stderr, "vpc") {
		t.Errorf("-f raw on a VHD: exit %d %q", code, stderr)
	}
	out, stderr, code := vdisk(t, "info", "--force-format", "-f", "raw", vhd)
	if code != 0 || !strings.Contains(out, "file format: raw") {
		t.Errorf("--force-format: exit %d %q %q", code, out, stderr)
	}
	iso := filepath.Join(dir, "t.iso")
	qemutest.Exec(t, "xorriso", "-as", "mkisofs", "-quiet", "-o", iso, dir)
	isoVHD := filepath.Join(dir, "iso.vhd")
	if _, stderr, code := vdisk(t, "convert", "-O", "vpc", "-o", "subformat=fixed", iso, isoVHD); code != 0 {
		t.Fatalf("iso to fixed vhd: %d %s", code, stderr)
	}
	if out, stderr, code := vdisk(t, "info", isoVHD); code != 0 || !strings.Contains(out, "file format: vpc") {
		t.Errorf("fixed VHD holding an ISO: exit %d %q %q", code, out, stderr)
	}
}

// TestDDMatchesQemu: dd's output (size and bytes) equals qemu-img dd's for
// the same operands, including its quirk that count includes skipped blocks.
// Where qemu-img prints "cannot skip to specified offset" and still exits 0
// with an empty file, vdisk fails and writes nothing.
func TestDDMatchesQemu(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := sparseRaw(t, dir)
	qcow := filepath.Join(dir, "src.qcow2")
	qemutest.Img(t, "convert", "-O", "qcow2", src, qcow)
	for _, ops := range [][]string{
		{"bs=64k", "count=200", "skip=160"},
		{"bs=1M", "count=5"},
		{"bs=3584", "skip=1"}, // an unaligned start
		{"bs=64k", "count=2000"},
		{"bs=64k", "skip=1024"},
	} {
		for _, in := range []string{src, qcow} {
			theirs, ours := filepath.Join(dir, "q.raw"), filepath.Join(dir, "v.raw")
			os.Remove(theirs)
			os.Remove(ours)
			qemutest.Img(t, append(append([]string{"dd", "-O", "raw"}, ops...), "if="+in, "of="+theirs)...)
			if _, stderr, code := vdisk(t, append(append([]string{"dd", "-O", "raw"}, ops...), "if="+in, "of="+ours)...); code != 0 {
				t.Fatalf("dd %v: exit %d %s", ops, code, stderr)
			}
			a, _ := os.ReadFile(theirs)
			b, _ := os.ReadFile(ours)
			if !bytes.Equal(a, b) {
				t.Errorf("dd %v of %s: %d bytes from vdisk, %d from qemu-img, contents differ", ops, filepath.Base(in), len(b), len(a))
			}
		}
	}
	out := filepath.Join(dir, "none.raw")
	_, stderr, code := vdisk(t, "dd", "bs=64k", "count=2", "skip=160", "if="+src, "of="+out)
	if code != 1 || !strings.Contains(stderr, "cannot skip to specified offset") {
		t.Errorf("skip past count: exit %d %q", code, stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("failed dd left an output file")
	}
}

// TestSnapshotList: `snapshot -l` prints qemu-img's table, also after
// `snapshot -c`; two operations at once are refused as qemu-img does.
func TestSnapshotList(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	img := filepath.Join(dir, "s.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", img, "16M")
	qemutest.IO(t, "qcow2", img, "write -P 1 0 64k")
	qemutest.Img(t, "snapshot", "-c", "first", img)
	qemutest.IO(t, "qcow2", img, "write -P 2 0 64k")
	qemutest.Img(t, "snapshot", "-c", "second", img)
	want := qemutest.Img(t, "snapshot", "-l", img)
	got, stderr, code := vdisk(t, "snapshot", "-l", img)
	if code != 0 || got != want || !strings.Contains(got, "second") {
		t.Errorf("snapshot -l: exit %d %s\n got: %q\nwant: %q", code, stderr, got, want)
	}
	if _, stderr, code := vdisk(t, "snapshot", "-c", "third", img); code != 0 {
		t.Errorf("snapshot -c: exit %d %q", code, stderr)
	}
	want = qemutest.Img(t, "snapshot", "-l", img)
	if got, _, _ := vdisk(t, "snapshot", "-l", img); got != want || !strings.Contains(got, "third") {
		t.Errorf("snapshot -l after -c:\n got: %q\nwant: %q", got, want)
	}
	qemutest.RequireClean(t, "qcow2", img)
	if _, stderr, code := vdisk(t, "snapshot", "-l", "-c", "x", img); code != 1 || !strings.Contains(stderr, "Cannot mix") {
		t.Errorf("snapshot -l -c: exit %d %q", code, stderr)
	}
}

// TestConvertSalvage: a qcow2 whose L2 entry points past the end of the
// file fails to convert; with --salvage the cluster becomes zeros, is
// reported once, and the output equals qemu-img convert --salvage's.
func TestConvertSalvage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	img := filepath.Join(dir, "dmg.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", img, "4M")
	qemutest.IO(t, "qcow2", img, "write -P 0x11 0 1M", "write -P 0x22 2M 1M")
	breakL2Entry(t, img, 3)
	out := filepath.Join(dir, "out.raw")
	if _, stderr, code := vdisk(t, "convert", "-O", "raw", img, out); code != 1 || !strings.Contains(stderr, "past the end") {
		t.Fatalf("convert of a damaged image: exit %d %q", code, stderr)
	}
	_, stderr, code := vdisk(t, "convert", "--salvage", "-O", "raw", img, out)
	if code != 0 || strings.Count(stderr, "warning: error while reading offset 196608 (65536 bytes") != 1 {
		t.Fatalf("--salvage: exit %d %q", code, stderr)
	}
	theirs := filepath.Join(dir, "theirs.raw")
	qemutest.Img(t, "convert", "--salvage", "-O", "raw", img, theirs)
	qemutest.RequireSame(t, "raw", theirs, "raw", out)
}

// breakL2Entry points the L2 entry of cluster n (first L2 table) past the
// end of the file, keeping its flags.
func breakL2Entry(t *testing.T, path string, n int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [8]byte
	readU64 := func(off int64) uint64 {
		if _, err := f.ReadAt(b[:], off); err != nil {
			t.Fatal(err)
		}
		return binary.BigEndian.Uint64(b[:])
	}
	l1 := readU64(40) // l1_table_offset
	l2 := readU64(int64(l1)) & 0x00fffffffffffe00
	entry := readU64(int64(l2) + 8*n)
	binary.BigEndian.PutUint64(b[:], entry&0xff00000000000000|1<<40)
	if _, err := f.WriteAt(b[:], int64(l2)+8*n); err != nil {
		t.Fatal(err)
	}
}

// TestConvertFlagsInterop: each convert flag, judged by qemu-img: the
// output passes qemu-img check (where it has one) and equals the source.
func TestConvertFlagsInterop(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := sparseRaw(t, dir)
	base := filepath.Join(dir, "base.qcow2")
	top := filepath.Join(dir, "top.qcow2")
	qemutest.Img(t, "convert", "-O", "qcow2", src, base)
	qemutest.Img(t, "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", top)
	qemutest.IO(t, "qcow2", top, "write -P 0x77 1M 64k", "write -z 10M 64k")
	qemutest.Img(t, "snapshot", "-c", "s1", top)
	qemutest.IO(t, "qcow2", top, "write -P 0x78 1M 64k")
	for _, tc := range []struct {
		name, in, inFmt, outFmt string
		args                    []string
		compareWith             func(out string) // nil: compare with in
	}{
		{name: "compress-zlib", in: src, inFmt: "raw", outFmt: "qcow2", args: []string{"-c"}},
		{name: "compress-zstd", in: src, inFmt: "raw", outFmt: "qcow2", args: []string{"-c", "-o", "compression_type=zstd"}},
		{name: "compress-stream-vmdk", in: src, inFmt: "raw", outFmt: "vmdk", args: []string{"-c", "-o", "subformat=streamOptimized"}},
		{name: "no-sparse", in: src, inFmt: "raw", outFmt: "qcow2", args: []string{"-S", "0"}},
		{name: "sparse-64k", in: src, inFmt: "raw", outFmt: "vdi", args: []string{"-S", "64k"}},
		{name: "out-of-order-one-worker", in: src, inFmt: "raw", outFmt: "vhdx", args: []string{"-W", "-m", "1"}},
		{name: "sync", in: src, inFmt: "raw", outFmt: "vpc", args: []string{"--sync", "-o", "force_size=on"}},
		{name: "flatten-chain", in: top, inFmt: "qcow2", outFmt: "qcow2"},
		{name: "backing", in: top, inFmt: "qcow2", outFmt: "qcow2", args: []string{"-B", "base.qcow2", "-F", "qcow2"}},
		{name: "snapshot", in: top, inFmt: "qcow2", outFmt: "raw", args: []string{"-l", "snapshot.name=s1"},
			compareWith: func(out string) {
				want := filepath.Join(dir, "want-s1.raw")
				qemutest.Img(t, "convert", "-l", "snapshot.name=s1", "-O", "raw", top, want)
				qemutest.RequireSame(t, "raw", want, "raw", out)
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, tc.name+"."+tc.outFmt)
			args := append(append([]string{"convert", "-f", tc.inFmt, "-O", tc.outFmt}, tc.args...), tc.in, out)
			if _, stderr, code := vdisk(t, args...); code != 0 {
				t.Fatalf("vdisk %v: exit %d %s", args, code, stderr)
			}
			if tc.outFmt == "qcow2" || tc.outFmt == "vmdk" || tc.outFmt == "vdi" || tc.outFmt == "vhdx" {
				qemutest.RequireClean(t, tc.outFmt, out)
			}
			if tc.compareWith != nil {
				tc.compareWith(out)
			} else {
				qemutest.RequireSame(t, tc.inFmt, tc.in, tc.outFmt, out)
			}
			info := qemutest.Info(t, tc.outFmt, out)
			switch tc.name {
			case "backing":
				if info["backing-filename"] != "base.qcow2" {
					t.Errorf("-B output has backing %v", info["backing-filename"])
				}
				flat := qemutest.Info(t, "qcow2", filepath.Join(dir, "flatten-chain.qcow2"))
				if info["actual-size"].(float64) >= flat["actual-size"].(float64) {
					t.Errorf("-B output (%v bytes) is not smaller than the flattened one (%v)", info["actual-size"], flat["actual-size"])
				}
			case "no-sparse":
				if info["actual-size"].(float64) < 64<<20 {
					t.Errorf("-S 0 output allocates only %v bytes", info["actual-size"])
				}
			case "compress-stream-vmdk":
				spec := info["format-specific"].(map[string]any)["data"].(map[string]any)
				if spec["create-type"] != "streamOptimized" {
					t.Errorf("create-type %v", spec["create-type"])
				}
			}
		})
	}
}

// TestConvertToStdout: a sequential format written to '-' is the same
// image qemu-img accepts; a random-access one is refused.
func TestConvertToStdout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := sparseRaw(t, dir)
	for _, o := range []string{"subformat=fixed", "subformat=fixed,force_size=on"} {
		out, stderr, code := vdisk(t, "convert", "-O", "vpc", "-o", o, src, "-")
		if code != 0 {
			t.Fatalf("convert -O vpc -o %s to stdout: %d %s", o, code, stderr)
		}
		path := filepath.Join(dir, "stdout.vhd")
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		qemutest.RequireSame(t, "raw", src, "vpc", path)
	}
	if _, stderr, code := vdisk(t, "convert", "-O", "qcow2", src, "-"); code != 1 || !strings.Contains(stderr, "stream") {
		t.Errorf("qcow2 to stdout: exit %d %q", code, stderr)
	}
}
