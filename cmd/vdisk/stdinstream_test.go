//go:build linux

package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// pipeVdisk runs vdisk (this test binary) with the file in written into
// its stdin through a pipe by this process (os/exec's StdinPipe: stdin is
// not a file, so it can be neither seeked nor mapped). With straceLog set
// it runs under strace, which logs every file vdisk opens or creates;
// with rssLog, under GNU time, which writes vdisk's peak RSS in KiB there
// (the rusage of a child this process starts would count this process's
// own peak: Go's os/exec shares its memory until the exec).
func pipeVdisk(t *testing.T, in, straceLog, rssLog string, args ...string) (string, int) {
	t.Helper()
	return pipeVdiskTo(t, in, nil, straceLog, rssLog, args...)
}

// pipeVdiskTo is pipeVdisk with vdisk's standard output written to
// stdout (when not nil).
func pipeVdiskTo(t *testing.T, in string, stdout io.Writer, straceLog, rssLog string, args ...string) (string, int) {
	t.Helper()
	name, argv := os.Args[0], args
	switch {
	case straceLog != "":
		name = qemutest.Tool(t, "strace")
		argv = append([]string{"-f", "-qq", "-e", "trace=open,openat,creat,rename,renameat,renameat2", "-o", straceLog, os.Args[0]}, args...)
	case rssLog != "":
		name = qemutest.Tool(t, "time")
		argv = append([]string{"-f", "%M", "-o", rssLog, os.Args[0]}, args...)
	}
	cmd := exec.Command(name, argv...)
	cmd.Env = append(os.Environ(), "VDISK_TEST_MAIN=1")
	pipe, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	cmd.Stderr, cmd.Stdout = &errb, stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(pipe, f) // vdisk may stop reading early (an error): the copy then fails
	f.Close()
	pipe.Close()
	err = cmd.Wait()
	code := 0
	if err != nil {
		code = 1
	}
	return errb.String(), code
}

// spooled says whether the strace log shows a spool file made.
func spooled(t *testing.T, log string) bool {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Contains(b, []byte(".vdisk-spool-"))
}

// streamSources makes a 40 MiB raw disk with data in three places and,
// from it with qemu-img, a streamOptimized VMDK and a fixed VHD.
func streamSources(t *testing.T) (raw, vmdk, vhd string) {
	dir := t.TempDir()
	raw = filepath.Join(dir, "disk.raw")
	qemutest.Img(t, "create", "-q", "-f", "raw", raw, "40M")
	qemutest.IO(t, "raw", raw, "write -P 0x5a 0 1M", "write -P 0xa5 17M 3M", "write -P 0x11 39M 100k")
	vmdk, vhd = filepath.Join(dir, "disk.vmdk"), filepath.Join(dir, "disk.vhd")
	qemutest.Img(t, "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", raw, vmdk)
	qemutest.Img(t, "convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed", raw, vhd)
	return raw, vmdk, vhd
}

// oddRaw makes a raw disk of 41 MiB + 1636 bytes (not a whole number of
// sectors, grains or blocks) whose data runs up to its last byte.
func oddRaw(t *testing.T) string {
	raw := filepath.Join(t.TempDir(), "odd.raw")
	qemutest.Img(t, "create", "-q", "-f", "raw", raw, "41M")
	qemutest.IO(t, "raw", raw, "write -P 0x3c 3M 64k", "write -P 0x77 40M 1M")
	f, err := os.OpenFile(raw, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(bytes.Repeat([]byte{0xc3}, 1636)); err != nil {
		t.Fatal(err)
	}
	return raw
}

// streamCase is one conversion of TestStdinStreamed.
type streamCase struct {
	name, in, inFmt string
	args            []string
	outFmt          string
	spool           bool
	stdout          bool   // the output is "-", written into a file
	decompress      string // the output is compressed: the tool that tests and decompresses it
}

// TestStdinStreamed: raw, a fixed VHD and a streamOptimized VMDK piped
// into convert are read as streams (strace sees no spool file), into
// outputs judged by qemu-img compare against the original, qemu-img
// check and the virtual size qemu-img sees (the raw input's, in whole
// sectors for the formats that count in them); a raw stream into an
// output that must know its size before its first byte (a VMDK to
// stdout) is spooled, the control that the spool check sees a spool.
func TestStdinStreamed(t *testing.T) {
	raw, vmdk, vhd := streamSources(t)
	odd := oddRaw(t)
	// 70 MiB with data in its first MiB only: most block tables (VMDK
	// grain tables, BAT pages) stay empty.
	sparse := filepath.Join(t.TempDir(), "sparse.raw")
	qemutest.Img(t, "create", "-q", "-f", "raw", sparse, "70M")
	qemutest.IO(t, "raw", sparse, "write -P 0x42 0 1M")
	cases := []streamCase{
		{name: "raw to qcow2", in: raw, inFmt: "raw", args: []string{"-O", "qcow2"}, outFmt: "qcow2"},
		{name: "raw -f raw to raw", in: raw, inFmt: "raw", args: []string{"-f", "raw", "-O", "raw"}, outFmt: "raw"},
		{name: "raw to fixed vhd", in: raw, inFmt: "raw", args: []string{"-O", "vpc", "-o", "subformat=fixed"}, outFmt: "vpc"},
		{name: "raw to compressed qcow2", in: raw, inFmt: "raw", args: []string{"-O", "qcow2", "-c"}, outFmt: "qcow2"},
		{name: "vmdk to qcow2", in: vmdk, inFmt: "vmdk", args: []string{"-O", "qcow2"}, outFmt: "qcow2"},
		{name: "vmdk to vhdx", in: vmdk, inFmt: "vmdk", args: []string{"-O", "vhdx"}, outFmt: "vhdx"},
		{name: "vmdk to vmdk stream", in: vmdk, inFmt: "vmdk", args: []string{"-O", "vmdk", "-o", "subformat=streamOptimized"}, outFmt: "vmdk"},
		{name: "fixed vhd to qcow2", in: vhd, inFmt: "vpc", args: []string{"-O", "qcow2"}, outFmt: "qcow2"},
		{name: "fixed vhd -f vpc to raw", in: vhd, inFmt: "vpc", args: []string{"-f", "vpc", "-O", "raw"}, outFmt: "raw"},
		{name: "raw to vmdk on stdout (spooled)", in: raw, inFmt: "raw", args: []string{"-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized"}, outFmt: "vmdk", spool: true, stdout: true},
	}
	// A raw stream into every output that can take its size at the end,
	// of a whole number of MiB, of an odd size and mostly empty. Under the
	// race detector (whose child processes run several times slower) the
	// odd size alone: it takes every code path the others take.
	inputs := []struct{ name, path string }{{"raw", raw}, {"odd raw", odd}, {"sparse raw", sparse}}
	if raceEnabled {
		inputs = inputs[1:2]
	}
	for _, in := range inputs {
		for _, out := range []struct {
			name       string
			args       []string
			outFmt     string
			stdout     bool
			decompress string
		}{
			{"raw on stdout", []string{"-O", "raw"}, "raw", true, ""},
			{"xz raw", []string{"-O", "raw", "--compression=xz"}, "raw", false, "xz"},
			{"zstd raw", []string{"-O", "raw", "--compression=zstd"}, "raw", false, "zstd"},
			{"gzip raw on stdout", []string{"-O", "raw", "--compression=gzip"}, "raw", true, "gzip"},
			{"dynamic vhd", []string{"-O", "vpc"}, "vpc", false, ""},
			{"fixed vhd", []string{"-O", "vpc", "-o", "subformat=fixed"}, "vpc", false, ""},
			{"vdi", []string{"-O", "vdi"}, "vdi", false, ""},
			{"vhdx", []string{"-O", "vhdx"}, "vhdx", false, ""},
			{"vhdx 1M blocks", []string{"-O", "vhdx", "-o", "block_size=1M"}, "vhdx", false, ""},
			{"vmdk", []string{"-O", "vmdk"}, "vmdk", false, ""},
			{"streamOptimized vmdk", []string{"-O", "vmdk", "-o", "subformat=streamOptimized"}, "vmdk", false, ""},
		} {
			cases = append(cases, streamCase{name: in.name + " to " + out.name, in: in.path, inFmt: "raw",
				args: out.args, outFmt: out.outFmt, stdout: out.stdout, decompress: out.decompress})
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runStreamCase(t, tc)
		})
	}
}

func runStreamCase(t *testing.T, tc streamCase) {
	dir := t.TempDir()
	out, log := filepath.Join(dir, "out"), filepath.Join(dir, "strace.log")
	target := out
	var stdout io.Writer
	if tc.stdout {
		f, err := os.Create(out)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		target, stdout = "-", f
	}
	args := append(append([]string{"convert"}, tc.args...), "-", target)
	if stderr, code := pipeVdiskTo(t, tc.in, stdout, log, "", args...); code != 0 {
		t.Fatalf("vdisk %s < %s: %s", strings.Join(args, " "), filepath.Base(tc.in), stderr)
	}
	if got := spooled(t, log); got != tc.spool {
		t.Errorf("spool file made: %v, want %v", got, tc.spool)
	}
	if tc.decompress != "" {
		tool := qemutest.Tool(t, tc.decompress)
		if b, err := exec.Command(tool, "-t", out).CombinedOutput(); err != nil {
			t.Fatalf("%s -t: %v: %s", tc.decompress, err, b)
		}
		plain := filepath.Join(dir, "out.raw")
		cmd := exec.Command(tool, "-dc", out)
		f, err := os.Create(plain)
		if err != nil {
			t.Fatal(err)
		}
		var errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = f, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s -dc: %v: %s", tc.decompress, err, errb.Bytes())
		}
		f.Close()
		out = plain
	}
	qemutest.RequireSame(t, tc.inFmt, tc.in, tc.outFmt, out)
	switch tc.outFmt {
	case "qcow2", "vdi", "vhdx", "vmdk":
		qemutest.RequireClean(t, tc.outFmt, out)
	}
	// The size is the stream's (qemu-img's of the input, in whole sectors
	// but for raw), not the provisional one.
	want := int64(qemutest.Info(t, tc.inFmt, tc.in)["virtual-size"].(float64))
	if tc.outFmt != "raw" {
		want = (want + 511) / 512 * 512
	}
	if got := qemutest.Info(t, tc.outFmt, out)["virtual-size"]; got != float64(want) {
		t.Errorf("virtual size %v, want %d", got, want)
	}
	// libyal's readers see the same size.
	if tool := map[string]string{"vpc": "vhdiinfo", "vhdx": "vhdiinfo", "vmdk": "vmdkinfo"}[tc.outFmt]; tool != "" && !tc.stdout {
		b, err := exec.Command(qemutest.Tool(t, tool), out).CombinedOutput()
		if err != nil || !bytes.Contains(b, []byte(fmt.Sprintf("(%d bytes)", want))) {
			t.Errorf("%s: %v, no size of %d bytes in\n%s", tool, err, want, b)
		}
	}
	// qemu can go on writing what was finished: into a new block at 8 MiB
	// and into the last sector, read back, and the image still checks.
	if tc.outFmt == "raw" || tc.stdout || strings.Contains(strings.Join(tc.args, " "), "streamOptimized") {
		return
	}
	last := strconv.FormatInt(want-512, 10)
	qemutest.IO(t, tc.outFmt, out, "write -P 0x5e 8M 64k", "write -P 0x6f "+last+" 512")
	qemutest.IO(t, tc.outFmt, out, "read -P 0x5e 8M 64k", "read -P 0x6f "+last+" 512")
	switch tc.outFmt {
	case "qcow2", "vdi", "vhdx", "vmdk":
		qemutest.RequireClean(t, tc.outFmt, out)
	}
}

// TestStdinStreamMemory: a 160 MiB raw disk of data (no zeros) piped
// into convert -O qcow2, vdi, vpc, vhdx and vmdk peaks well under its
// size in RSS: the stream is held in a bounded window, not in memory nor
// in a spool.
func TestStdinStreamMemory(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	dir := t.TempDir()
	raw := filepath.Join(dir, "dense.raw")
	f, err := os.Create(raw)
	if err != nil {
		t.Fatal(err)
	}
	block := make([]byte, 1<<20)
	for i := range 160 {
		for j := range block {
			block[j] = byte(j*31 + i + j>>9 + 1)
		}
		f.Write(block)
	}
	f.Close()
	// qcow2, and the outputs created at the provisional 1 TiB (their
	// tables sized for it: a 4 MiB VDI block map, a 2 MiB VHD BAT).
	for _, format := range []string{"qcow2", "vdi", "vpc", "vhdx", "vmdk"} {
		out := filepath.Join(dir, "out."+format)
		rssLog := filepath.Join(dir, "rss")
		stderr, code := pipeVdisk(t, raw, "", rssLog, "convert", "-O", format, "-", out)
		if code != 0 {
			t.Fatal(stderr)
		}
		text, _ := os.ReadFile(rssLog)
		rssKiB, err := strconv.ParseInt(strings.TrimSpace(string(text)), 10, 64)
		if err != nil {
			t.Fatalf("GNU time's report %q: %v", text, err)
		}
		qemutest.RequireSame(t, "raw", raw, format, out)
		// The race detector's shadow memory multiplies a process's RSS (the
		// child is this race-built test binary): the bound holds for the plain
		// build, which the run without -race checks.
		if rssKiB <= 0 || !raceEnabled && rssKiB > 96<<10 {
			t.Errorf("%s: peak RSS %d KiB streaming a 160 MiB disk; want at most 96 MiB", format, rssKiB)
		}
		t.Logf("%s: peak RSS %d KiB", format, rssKiB)
		os.Remove(out)
	}
}

// vmdkRecords splits a streamOptimized VMDK into its header part and its
// marker records (each a grain marker with its data, or a metadata marker
// with its sectors), read from the VMware stream layout.
func vmdkRecords(t *testing.T, b []byte) ([]byte, [][]byte) {
	le := binary.LittleEndian
	at := int(le.Uint64(b[64:])) * 512 // overHead
	head := b[:at]
	var recs [][]byte
	for at+12 <= len(b) {
		lba, size := le.Uint64(b[at:]), le.Uint32(b[at+8:])
		n := (12 + int(size) + 511) / 512 * 512
		if size == 0 {
			n = 512 + int(lba)*512
		}
		if at+n > len(b) {
			t.Fatalf("record at %d runs past the file", at)
		}
		recs = append(recs, b[at:at+n])
		at += n
	}
	return head, recs
}

// TestStdinStreamHostile: a stream cut short, grains out of order, and
// -f vpc on a stream without a footer each fail with one line naming
// stdin and the stream offset, leaving no output.
func TestStdinStreamHostile(t *testing.T) {
	raw, vmdk, _ := streamSources(t)
	b, err := os.ReadFile(vmdk)
	if err != nil {
		t.Fatal(err)
	}
	head, recs := vmdkRecords(t, b)
	if len(recs) < 3 {
		t.Fatalf("qemu's stream has %d records", len(recs))
	}
	dir := t.TempDir()
	swapped := append([]byte{}, head...)
	swapped = append(append(append(swapped, recs[1]...), recs[0]...), bytes.Join(recs[2:], nil)...)
	cut := b[:len(head)+len(recs[0])+len(recs[1])/2+1]
	for _, tc := range []struct {
		name string
		in   []byte
		args []string
		want string
	}{
		{"out of order", swapped, nil, "out of order"},
		{"truncated", cut, nil, "truncated"},
		{"truncated to raw", cut, []string{"-O", "raw"}, "truncated"},
		{"vpc without footer", nil, []string{"-f", "vpc", "-O", "raw"}, "footer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := raw
			if tc.in != nil {
				in = filepath.Join(dir, "in.vmdk")
				os.WriteFile(in, tc.in, 0o644)
			}
			out := filepath.Join(t.TempDir(), "out.img")
			args := append(append([]string{"convert"}, tc.args...), "-", out)
			if len(tc.args) == 0 {
				args = []string{"convert", "-O", "qcow2", "-", out}
			}
			stderr, code := pipeVdisk(t, in, "", "", args...)
			msg := strings.TrimSpace(stderr)
			if code == 0 || strings.Contains(msg, "\n") || !strings.Contains(msg, tc.want) || !strings.Contains(msg, "-: ") || !strings.Contains(msg, "offset") {
				t.Errorf("exit %d, stderr %q; want one line naming -, an offset and %q", code, stderr, tc.want)
			}
			if _, err := os.Stat(out); err == nil {
				t.Error("the failed conversion left its output")
			}
		})
	}
}

// TestStdinStreamEdges: an empty raw stream streams into every output that
// takes its size at the end and gives a disk of 0 bytes (qemu-img info;
// check where qemu has one; the VMDK, VHDX and fixed VHD of 0 bytes are
// not judged: qemu cannot open those vdisk makes with create either, nor
// its own VMDK and fixed VHD, and its 0-byte VHDX needs a 64 MiB BAT region
// for a count qemu computes as -1 >> chunk bits); a stream longer than
// --spool-limit stops with one line naming the limit and leaves nothing
// in the output's directory.
func TestStdinStreamEdges(t *testing.T) {
	raw, _, _ := streamSources(t)
	empty := filepath.Join(t.TempDir(), "empty.raw")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	outputs := []struct {
		name   string
		args   []string
		outFmt string
	}{
		{"raw", []string{"-O", "raw"}, "raw"},
		{"qcow2", []string{"-O", "qcow2"}, "qcow2"},
		{"dynamic vhd", []string{"-O", "vpc"}, "vpc"},
		{"vdi", []string{"-O", "vdi"}, "vdi"},
		{"vhdx", []string{"-O", "vhdx"}, ""},
		{"xz raw", []string{"-O", "raw", "--compression=xz"}, ""},
		{"vmdk", []string{"-O", "vmdk"}, ""},
		{"streamOptimized vmdk", []string{"-O", "vmdk", "-o", "subformat=streamOptimized"}, ""},
		{"fixed vhd", []string{"-O", "vpc", "-o", "subformat=fixed"}, ""},
	}
	for _, o := range outputs {
		t.Run("empty to "+o.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			out, log := filepath.Join(dir, "out"), filepath.Join(dir, "strace.log")
			args := append(append([]string{"convert"}, o.args...), "-", out)
			if stderr, code := pipeVdisk(t, empty, log, "", args...); code != 0 {
				t.Fatalf("vdisk %s < empty: %s", strings.Join(args, " "), stderr)
			}
			if spooled(t, log) {
				t.Error("the empty stream was spooled")
			}
			if o.outFmt == "" {
				return
			}
			if got := qemutest.Info(t, o.outFmt, out)["virtual-size"]; got != float64(0) {
				t.Errorf("virtual size %v, want 0", got)
			}
			if o.outFmt != "raw" && o.outFmt != "vpc" {
				qemutest.RequireClean(t, o.outFmt, out)
			}
		})
		t.Run("over the limit to "+o.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			args := append(append([]string{"--spool-limit", "4M", "convert"}, o.args...), "-", filepath.Join(dir, "out"))
			stderr, code := pipeVdisk(t, raw, "", "", args...)
			msg := strings.TrimSpace(stderr)
			if code == 0 || strings.Contains(msg, "\n") || !strings.Contains(msg, "--spool-limit") || !strings.Contains(msg, "-: ") {
				t.Errorf("exit %d, stderr %q; want one line naming - and --spool-limit", code, stderr)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("the failed conversion left %d files (%s)", len(left), left[0].Name())
			}
		})
	}
}
