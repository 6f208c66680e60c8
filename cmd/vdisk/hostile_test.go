package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vdiskio/vdisk/internal/clitest"
	"github.com/vdiskio/vdisk/internal/qemutest"
	"github.com/vdiskio/vdisk/iso"
)

// The hostile images of issue 19, each generated here and given to the CLI
// in a child process limited to 1 GiB of address space and a generous time
// bound: each must end in one clean line (or, where qemu reads the image,
// succeed) quickly, never die out of memory.
const (
	hostileAddressSpace = 1 << 30
	hostileTimeout      = 2 * time.Minute
	// hostileCPU is the CPU time each case must stay under (CPU, not wall
	// time: the test machine is shared); the cases take well under a second.
	hostileCPU = 10 * time.Second
)

// bombSparse writes a VMDK sparse extent of 8 GiB whose grain directory is
// 64 MiB (one grain table of one 512-byte grain per GD entry): the largest
// table the limits allow, in a sparse file that takes a few KiB on disk.
func bombSparse(t *testing.T, path string) {
	t.Helper()
	const (
		capacity  = 16 << 20 // sectors
		gdSectors = capacity * 4 / 512
	)
	h := make([]byte, 512)
	le := binary.LittleEndian
	le.PutUint32(h[0:], 0x564d444b) // "KDMV"
	le.PutUint32(h[4:], 1)          // version
	le.PutUint64(h[12:], capacity)  // capacity, sectors
	le.PutUint64(h[20:], 1)         // grain size, sectors
	le.PutUint32(h[44:], 1)         // GTEs per GT
	le.PutUint64(h[56:], 1)         // GD offset, sectors
	le.PutUint64(h[64:], 1+gdSectors)
	copy(h[73:], "\n \r\n")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(h); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate((1 + gdSectors) * 512); err != nil {
		t.Fatal(err)
	}
}

func vmdkDescriptor(extents []string, extra string) string {
	return "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n" + extra +
		"createType=\"monolithicSparse\"\n\n# Extent description\n" + strings.Join(extents, "\n") +
		"\n\n# The Disk Data Base\n#DDB\n\nddb.adapterType = \"ide\"\n"
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// qcow2Named returns a small qcow2 (512-byte clusters) naming the backing
// file "c0000.qcow2", with the offset of that name in it: copies patched
// there make chains and loops without running qemu-img for each file.
func qcow2Named(t *testing.T, dir string) ([]byte, int) {
	t.Helper()
	path := filepath.Join(dir, "template.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", "-o", "cluster_size=512", "-u", "-b", "c0000.qcow2", "-F", "qcow2", path, "1M")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	at := bytes.Index(b, []byte("c0000.qcow2"))
	if at < 0 {
		t.Fatal("backing name not found in the qcow2 qemu-img made")
	}
	return b, at
}

func writeNamed(t *testing.T, dir string, tmpl []byte, at int, name, backing string) string {
	t.Helper()
	b := bytes.Clone(tmpl)
	copy(b[at:], backing)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestHostileImages(t *testing.T) {
	t.Parallel()
	qemutest.Tool(t, "qemu-img")
	bin := clitest.Binary(t)
	dir := t.TempDir()
	run := func(t *testing.T, args ...string) clitest.Result {
		t.Helper()
		res := clitest.Run(t, bin, hostileAddressSpace, hostileTimeout, args...)
		t.Logf("%s: exit %d in %v (CPU %v), peak RSS %d MiB: %s", strings.Join(args, " "), res.Code, res.Elapsed.Round(time.Millisecond), res.CPU.Round(time.Millisecond), res.MaxRSSBytes>>20, strings.TrimSpace(res.Stderr))
		if res.CPU > hostileCPU {
			t.Errorf("took %v of CPU", res.CPU)
		}
		return res
	}

	// Case 1: one sparse extent with a 64 MiB grain directory named by 200
	// descriptor lines. qemu reads every line as a view of the file; vdisk
	// opens it, and loads its directory, once.
	t.Run("repeated-sparse-extent", func(t *testing.T) {
		bombSparse(t, filepath.Join(dir, "s.vmdk"))
		lines := make([]string, 200)
		for i := range lines {
			lines[i] = `RW 1 SPARSE "s.vmdk"`
		}
		desc := filepath.Join(dir, "repeat.vmdk")
		writeFile(t, desc, vmdkDescriptor(lines, ""))
		for _, cmd := range [][]string{{"info", desc}, {"map", desc}, {"convert", "-O", "raw", desc, filepath.Join(dir, "repeat.raw")}} {
			if res := run(t, cmd...); res.Code != 0 {
				t.Errorf("%s: exit %d: %s", cmd[0], res.Code, res.Stderr)
			}
		}
	})
	// Case 1 with distinct files: 200 copies, each with its own 64 MiB
	// directory, exceed the metadata budget after a few.
	t.Run("distinct-sparse-bombs", func(t *testing.T) {
		lines := make([]string, 200)
		for i := range lines {
			name := fmt.Sprintf("b%03d.vmdk", i)
			bombSparse(t, filepath.Join(dir, name))
			lines[i] = fmt.Sprintf("RW 1 SPARSE %q", name)
		}
		desc := filepath.Join(dir, "bombs.vmdk")
		writeFile(t, desc, vmdkDescriptor(lines, ""))
		clitest.RequireCleanError(t, run(t, "map", desc), "grain directory", "128 MiB metadata budget", "--max-metadata")
		out := filepath.Join(dir, "bombs.raw")
		clitest.RequireCleanError(t, run(t, "convert", "-O", "raw", desc, out), "metadata budget")
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("convert left %s", out)
		}
		// The budget is the user's to set (raising it past what the address
		// space holds is theirs too).
		clitest.RequireCleanError(t, run(t, "--max-metadata", "100M", "map", desc), "100 MiB metadata budget")
	})
	// Case 2: loops are refused by file identity before any table of the
	// repeated layer loads, in one line naming the loop.
	tmpl, at := qcow2Named(t, dir)
	t.Run("self-backing-qcow2", func(t *testing.T) {
		loopDir := filepath.Join(dir, "self")
		os.Mkdir(loopDir, 0o755)
		self := writeNamed(t, loopDir, tmpl, at, "c0000.qcow2", "c0000.qcow2")
		for _, cmd := range [][]string{{"info", "--backing-chain", self}, {"map", self}, {"convert", "-O", "raw", self, filepath.Join(loopDir, "out.raw")}} {
			clitest.RequireCleanError(t, run(t, cmd...), "backing loop: "+self+" -> "+self)
		}
	})
	t.Run("a-b-a-qcow2", func(t *testing.T) {
		loopDir := filepath.Join(dir, "aba")
		os.Mkdir(loopDir, 0o755)
		a := writeNamed(t, loopDir, tmpl, at, "c0000.qcow2", "c0001.qcow2")
		b := writeNamed(t, loopDir, tmpl, at, "c0001.qcow2", "c0000.qcow2")
		clitest.RequireCleanError(t, run(t, "map", a), "backing loop: "+a+" -> "+b+" -> "+a)
		clitest.RequireCleanError(t, run(t, "info", "--backing-chain", a), "backing loop: "+a+" -> "+b+" -> "+a)
	})
	t.Run("self-parent-vmdk", func(t *testing.T) {
		loopDir := filepath.Join(dir, "vmdkself")
		os.Mkdir(loopDir, 0o755)
		if err := os.WriteFile(filepath.Join(loopDir, "d-flat.vmdk"), make([]byte, 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(loopDir, "loop.vmdk")
		writeFile(t, path, strings.Replace(vmdkDescriptor([]string{`RW 2048 FLAT "d-flat.vmdk" 0`}, `parentFileNameHint="loop.vmdk"`+"\n"),
			"parentCID=ffffffff", "parentCID=12345678", 1))
		clitest.RequireCleanError(t, run(t, "map", path), "backing loop: "+path+" -> "+path)
	})
	t.Run("1000-deep-chain", func(t *testing.T) {
		chainDir := filepath.Join(dir, "chain")
		os.Mkdir(chainDir, 0o755)
		for i := range 1000 {
			writeNamed(t, chainDir, tmpl, at, fmt.Sprintf("c%04d.qcow2", i), fmt.Sprintf("c%04d.qcow2", i+1))
		}
		for _, cmd := range []string{"map", "info --backing-chain", "convert -O raw"} {
			args := append(strings.Fields(cmd), filepath.Join(chainDir, "c0000.qcow2"))
			if strings.HasPrefix(cmd, "convert") {
				args = append(args, filepath.Join(chainDir, "out.raw"))
			}
			res := run(t, args...)
			clitest.RequireCleanError(t, res, "backing chain", "more than 64 layers")
			if len(res.Stderr) > 400 {
				t.Errorf("the depth error is %d bytes long", len(res.Stderr))
			}
		}
	})
	// Case 7: 200 files of an ISO patched to point at one 1 MiB extent with
	// 200 different lengths would write 200 MiB from a 1.5 MiB image.
	t.Run("iso-overlapping-files", func(t *testing.T) {
		img := overlapISO(t)
		dest := filepath.Join(dir, "isodest")
		clitest.RequireCleanError(t, run(t, "iso", "extract", img, "/", dest), "limit exceeded", "files overlap")
		st, _ := os.Stat(img)
		if written := treeBytes(t, dest); written > st.Size() {
			t.Errorf("wrote %d bytes from a %d-byte image", written, st.Size())
		}
	})
	// Case 6: a source truncated while it is converted fails the
	// conversion (exit 1), leaving nothing at the destination.
	t.Run("source-shrinks", func(t *testing.T) {
		convertShrinking(t, bin, filepath.Join(dir, "shrink"))
	})
}

// ECMA-119 directory record fields.
const (
	isoRecExtent = 2  // extent LBA, both-endian 32
	isoRecLength = 10 // data length, both-endian 32
	isoRecIDLen  = 32 // file identifier length; the identifier follows
)

func isoBoth32(b []byte, v uint32) {
	binary.LittleEndian.PutUint32(b, v)
	binary.BigEndian.PutUint32(b[4:], v)
}

// overlapISO writes an image whose 200 small files all point at a 1 MiB
// file's extent, with lengths of 1 MiB minus 1..200 bytes.
func overlapISO(t *testing.T) string {
	t.Helper()
	tree := filepath.Join(t.TempDir(), "tree")
	os.Mkdir(tree, 0o755)
	if err := os.WriteFile(filepath.Join(tree, "big.bin"), bytes.Repeat([]byte("0123456789abcdef"), 1<<16), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		os.WriteFile(filepath.Join(tree, fmt.Sprintf("f%03d.txt", i)), []byte{'x'}, 0o644)
	}
	var buf bytes.Buffer
	if err := iso.Create(context.Background(), &buf, os.DirFS(tree), iso.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	img := buf.Bytes()
	record := func(id string) []byte {
		i := bytes.Index(img, append([]byte{byte(len(id))}, id...))
		if i < isoRecIDLen {
			t.Fatalf("record %q not found", id)
		}
		return img[i-isoRecIDLen:]
	}
	bigLBA := binary.LittleEndian.Uint32(record("BIG.BIN;1")[isoRecExtent:])
	for i := range 200 {
		r := record(fmt.Sprintf("F%03d.TXT;1", i))
		isoBoth32(r[isoRecExtent:], bigLBA)
		isoBoth32(r[isoRecLength:], uint32(1<<20-1-i))
	}
	path := filepath.Join(t.TempDir(), "overlap.iso")
	if err := os.WriteFile(path, img, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func treeBytes(t *testing.T, dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// convertShrinking converts a 1 GiB raw file of many small extents with
// progress on a pipe nobody reads: the child blocks mid-conversion, the
// source is cut to 1 MiB, the pipe is drained, and the child must fail.
func convertShrinking(t *testing.T, bin, dir string) {
	os.MkdirAll(dir, 0o755)
	src := manyExtents(t, dir)
	dst := filepath.Join(dir, "out.raw")
	ctx, cancel := context.WithTimeout(context.Background(), hostileTimeout)
	defer cancel()
	cmd := clitest.Command(ctx, hostileAddressSpace, bin, "convert", "-p", "-m", "1", "-O", "raw", src, dst)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitTemp(t, stdout, dir)
	if err := os.Truncate(src, 1<<20); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	t.Logf("convert of a source cut short: %v: %s", err, strings.TrimSpace(stderr.String()))
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	if cmd.ProcessState.ExitCode() != 1 || len(lines) != 1 || !strings.Contains(stderr.String(), "shrank") {
		t.Fatalf("exit %d, stderr %q: want exit 1 and one line saying the source shrank", cmd.ProcessState.ExitCode(), stderr.String())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}
}
