package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// compressedVariants compresses path with the real tools: each of xz
// (single block, multi-block, two concatenated streams), zstd, gzip and
// bzip2. It returns the compressed files by variant name.
func compressedVariants(t *testing.T, path string) map[string]string {
	t.Helper()
	for _, tool := range []string{"xz", "zstd", "gzip", "bzip2", "sh", "head", "tail"} {
		qemutest.Tool(t, tool)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	half := st.Size() / 2
	shell := map[string]string{
		"xz":            "xz -c -T1 \"$0\" > \"$0.xz\"",
		"xz-multiblock": "xz -c -T1 --block-size=1MiB \"$0\" > \"$0.mb.xz\"",
		"xz-multistream": "{ head -c " + itoa(half) + " \"$0\" | xz -c; tail -c +" + itoa(half+1) +
			" \"$0\" | xz -c; } > \"$0.ms.xz\"",
		"zstd":  "zstd -q -c \"$0\" > \"$0.zst\"",
		"gzip":  "gzip -c \"$0\" > \"$0.gz\"",
		"bzip2": "bzip2 -c \"$0\" > \"$0.bz2\"",
	}
	ext := map[string]string{"xz": ".xz", "xz-multiblock": ".mb.xz", "xz-multistream": ".ms.xz",
		"zstd": ".zst", "gzip": ".gz", "bzip2": ".bz2"}
	out := map[string]string{}
	for name, script := range shell {
		if b, err := exec.Command("sh", "-c", script, path).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", name, err, b)
		}
		out[name] = path + ext[name]
	}
	// The tools themselves must read what they wrote (and multi-block must be).
	for file, what := range map[string]int{out["xz-multiblock"]: 2, out["xz-multistream"]: 1} {
		// --robot -l: "file<TAB>streams<TAB>blocks<TAB>..."
		r := qemutest.Exec(t, "xz", "--robot", "-l", file)
		var streams, blocks int
		for _, line := range strings.Split(r.Stdout, "\n") {
			if f := strings.Split(line, "\t"); len(f) > 3 && f[0] == "file" {
				streams, _ = strconv.Atoi(f[1])
				blocks, _ = strconv.Atoi(f[2])
			}
		}
		if r.Code != 0 || (what == 2 && blocks < 2) || (what == 1 && streams != 2) {
			t.Fatalf("xz -l %s: %d streams, %d blocks: %s %s", file, streams, blocks, r.Stdout, r.Stderr)
		}
	}
	return out
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestConvertCompressedInputs: for every inner format qemu-img makes and
// every compression the real tools make, vdisk reads the compressed file as
// the image inside: info names the inner format and the compression, and
// convert gives the bytes decompress-then-convert gives (qemu-img compare
// with the original, and byte-identical raw outputs).
func TestConvertCompressedInputs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, format := range []string{"raw", "qcow2", "vmdk", "vpc", "vhdx", "vdi"} {
		orig := filepath.Join(dir, "disk."+format)
		qemutest.Img(t, "create", "-q", "-f", format, orig, "4M")
		qemutest.IO(t, format, orig, "write -P 0x5a 0 64k", "write -P 0xa5 1M 2M", "write -P 0x11 3900k 3k")
		plainRaw := filepath.Join(dir, format+".plain.raw")
		if _, stderr, code := vdisk(t, "convert", "-O", "raw", orig, plainRaw); code != 0 {
			t.Fatalf("convert %s: %s", orig, stderr)
		}
		want, err := os.ReadFile(plainRaw)
		if err != nil {
			t.Fatal(err)
		}
		// qemu-img says what the image inside is (vpc rounds the size to
		// its geometry).
		wantInfo := qemutest.Info(t, format, orig)
		wantFormat, wantSize := wantInfo["format"], wantInfo["virtual-size"]
		for variant, path := range compressedVariants(t, orig) {
			t.Run(format+"/"+variant, func(t *testing.T) {
				stdout, stderr, code := vdisk(t, "info", "--output=json", path)
				if code != 0 {
					t.Fatalf("info %s: %s", path, stderr)
				}
				var info map[string]any
				if err := json.Unmarshal([]byte(stdout), &info); err != nil {
					t.Fatal(err)
				}
				kind := strings.SplitN(variant, "-", 2)[0]
				if info["format"] != wantFormat || info["virtual-size"] != wantSize || info["vdisk-compression"] != kind {
					t.Errorf("info %s: format %v, virtual-size %v, vdisk-compression %v", path, info["format"], info["virtual-size"], info["vdisk-compression"])
				}
				if variant == "zstd" {
					// map, compare and checksum read the image inside as
					// they read the decompressed file.
					for _, args := range [][]string{{"map", "--output=json"}, {"checksum"}} {
						want, _, _ := vdisk(t, append(args, orig)...)
						got, stderr, code := vdisk(t, append(args, path)...)
						if code != 0 || strings.ReplaceAll(got, path, orig) != want {
							t.Errorf("vdisk %v %s: exit %d %s\n got %q\nwant %q", args, path, code, stderr, got, want)
						}
					}
					if _, stderr, code := vdisk(t, "compare", path, orig); code != 0 {
						t.Errorf("vdisk compare %s %s: exit %d %s", path, orig, code, stderr)
					}
					human, _, _ := vdisk(t, "info", path)
					if !strings.Contains(human, "\nsource compression: "+kind+"\n") {
						t.Errorf("human info of %s does not name %s:\n%s", path, kind, human)
					}
				}
				out := filepath.Join(t.TempDir(), "out.qcow2")
				if _, stderr, code := vdisk(t, "convert", "-O", "qcow2", path, out); code != 0 {
					t.Fatalf("convert %s: %s", path, stderr)
				}
				if r := qemutest.Compare(t, format, orig, "qcow2", out); r.Code != 0 {
					t.Errorf("qemu-img compare %s %s: %s%s", orig, out, r.Stdout, r.Stderr)
				}
				if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".vdisk-spool-*")); len(left) != 0 {
					t.Errorf("spool left beside the output: %v", left)
				}
				if variant != "xz-multiblock" && variant != "gzip" {
					return // the byte-identical raw check once per format and tool family
				}
				rawOut := filepath.Join(filepath.Dir(out), "out.raw")
				if _, stderr, code := vdisk(t, "convert", "-O", "raw", path, rawOut); code != 0 {
					t.Fatalf("convert %s: %s", path, stderr)
				}
				if got, err := os.ReadFile(rawOut); err != nil || !bytes.Equal(got, want) {
					t.Errorf("raw from %s differs from raw from the decompressed image (%v)", path, err)
				}
			})
		}
	}
}

// TestCompressedBombIsOneLine: a small .gz of a zero stream past
// --spool-limit is a one-line error, and no spool file is left.
func TestCompressedBombIsOneLine(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bomb := filepath.Join(dir, "bomb.img.gz")
	script := "head -c 64M /dev/zero | gzip -c > \"$0\""
	qemutest.Tool(t, "gzip")
	if b, err := exec.Command("sh", "-c", script, bomb).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	for _, args := range [][]string{
		{"--spool-limit", "16M", "info", bomb},
		{"--spool-limit", "16M", "convert", "-O", "qcow2", bomb, filepath.Join(dir, "out.qcow2")},
	} {
		_, stderr, code := vdisk(t, args...)
		if code == 0 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, "spool limit") || !strings.Contains(stderr, bomb) {
			t.Errorf("vdisk %s: exit %d, stderr %q; want one line naming the file and the spool limit", strings.Join(args, " "), code, stderr)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".vdisk-spool-*")); len(left) != 0 {
		t.Errorf("spool left: %v", left)
	}
	if _, err := os.Stat(filepath.Join(dir, "out.qcow2")); !os.IsNotExist(err) {
		t.Errorf("the failed conversion left its output: %v", err)
	}
	if _, stderr, code := vdisk(t, "--spool-limit", "lots", "info", bomb); code == 0 || !strings.Contains(stderr, "--spool-limit") {
		t.Errorf("a bad --spool-limit: exit %d, %q", code, stderr)
	}
}

// TestStdinSource: '-' is the input of info, checksum and convert, plain or
// compressed.
func TestStdinSource(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	orig := filepath.Join(dir, "disk.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", orig, "4M")
	qemutest.IO(t, "qcow2", orig, "write -P 0x5a 1M 64k")
	qemutest.Tool(t, "zstd")
	zst := orig + ".zst"
	if r := qemutest.Exec(t, "zstd", "-q", "-k", orig); r.Code != 0 {
		t.Fatal(r.Stderr)
	}
	wantSum, _, code := vdisk(t, "checksum", orig)
	if code != 0 {
		t.Fatal("checksum of the original failed")
	}
	for _, in := range []string{orig, zst} {
		stdin := func(args ...string) (string, string, int) {
			t.Helper()
			f, err := os.Open(in)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			cmd := exec.Command(os.Args[0], args...)
			cmd.Env = append(os.Environ(), "VDISK_TEST_MAIN=1")
			cmd.Stdin, cmd.Dir = f, dir
			var out, errb bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errb
			err = cmd.Run()
			if err != nil {
				return out.String(), errb.String(), 1
			}
			return out.String(), errb.String(), 0
		}
		if out, stderr, code := stdin("info", "--output=json", "-"); code != 0 || !strings.Contains(out, `"format": "qcow2"`) {
			t.Errorf("info - < %s: exit %d %s %s", in, code, out, stderr)
		}
		if sum, stderr, code := stdin("checksum", "-"); code != 0 || strings.Fields(sum)[0] != strings.Fields(wantSum)[0] {
			t.Errorf("checksum - < %s: exit %d %q %s, want %q", in, code, sum, stderr, wantSum)
		}
		out := filepath.Join(dir, "out.vmdk")
		if _, stderr, code := stdin("convert", "-O", "vmdk", "-", out); code != 0 {
			t.Fatalf("convert - < %s: %s", in, stderr)
		}
		if r := qemutest.Compare(t, "qcow2", orig, "vmdk", out); r.Code != 0 {
			t.Errorf("qemu-img compare after convert - < %s: %s%s", in, r.Stdout, r.Stderr)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".vdisk-spool-*")); len(left) != 0 {
		t.Errorf("spool left: %v", left)
	}
}
