package qcow2

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/faultfile"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

// faultOp is one write of the fault scenario, done by vdisk and, for the
// expected result, by qemu-io.
type faultOp struct {
	zero      bool
	pat       byte
	off, size int64
}

func (o faultOp) qemuIO() string {
	if o.zero {
		return "write -z " + itoa(o.off) + " " + itoa(o.size)
	}
	return "write -P " + itoa(int64(o.pat)) + " " + itoa(o.off) + " " + itoa(o.size)
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// faultScenario is a qemu-made image (512-byte clusters, 64-bit refcounts:
// one refcount block covers 32 KiB, the one-cluster refcount table 2 MiB
// of host file) almost filled, and writes that overwrite in place, append
// across many L2 tables and past what the refcount table covers (so it
// moves), and free clusters with zero writes.
func faultScenario(t *testing.T, dir string, extra ...string) (string, []faultOp) {
	path := filepath.Join(dir, "base.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", "-o", "cluster_size=512,refcount_bits=64", path, "4M")
	qemutest.IO(t, "qcow2", path, append([]string{"write -P 0x11 0 1800k"}, extra...)...)
	ops := []faultOp{
		{pat: 0x22, off: 100 << 10, size: 8 << 10},
		{zero: true, off: 0, size: 64 << 10},
		{pat: 0x44, off: 3<<20 + 512, size: 1024},
		{pat: 0x55, off: 500<<10 + 512, size: 512},
	}
	for off := int64(2 << 20); off < 2<<20+320<<10; off += 32 << 10 {
		ops = append(ops, faultOp{pat: byte(0x60 + off>>15&0xf), off: off, size: 32 << 10})
	}
	return path, ops
}

// applyOps writes ops into the qcow2 at path through a file failing at
// write failAt, with a four-table L2 cache (so tables are evicted and
// written back between flushes); it returns the writes made and the error.
func applyOps(t *testing.T, path string, ops []faultOp, failAt int) (int, error) {
	f, err := formats.OpenOSFile(path, true)
	if err != nil {
		t.Fatal(err)
	}
	ff := faultfile.FailWrites(f, failAt)
	img, err := Open(context.Background(), ff, formats.OpenOptions{Writable: true,
		Limits: formats.Limits{CacheBytes: 4 * 512}})
	if err != nil {
		t.Fatal(err)
	}
	var first error
	for i, o := range ops {
		if o.zero {
			err = img.WriteZeroes(o.off, o.size)
		} else {
			_, err = img.WriteAt(bytes.Repeat([]byte{o.pat}, int(o.size)), o.off)
		}
		if err != nil && first == nil {
			first = err
		}
		if i == 3 { // a flush in the middle, as commit and convert make
			if err := img.Flush(); err != nil && first == nil {
				first = err
			}
		}
	}
	if err := img.Close(); err != nil && first == nil {
		first = err
	}
	return ff.Calls(), first
}

// TestWriterFailsAtEveryWrite interrupts the writer at each of its writes
// and has qemu-img judge what is left: no corruption (leaks, exit 3, are
// allowed, as qemu allows them) and each sector reads the old or the new
// data (the new data being what qemu-io writes with the same operations).
func TestWriterFailsAtEveryWrite(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	dir := t.TempDir()
	path, ops := faultScenario(t, dir)
	pristine := readBytes(t, path)
	oldRaw := readBytes(t, qemutest.ToRaw(t, "qcow2", path))
	want := filepath.Join(dir, "want.qcow2")
	writeBytes(t, want, pristine)
	var cmds []string
	for _, o := range ops {
		cmds = append(cmds, o.qemuIO())
	}
	qemutest.IO(t, "qcow2", want, cmds...)
	newRaw := readBytes(t, qemutest.ToRaw(t, "qcow2", want))

	n, err := applyOps(t, path, ops, -1)
	if err != nil {
		t.Fatal(err)
	}
	qemutest.RequireClean(t, "qcow2", path)
	qemutest.RequireSame(t, "qcow2", path, "qcow2", want)
	if rt := readBytes(t, path)[48:56]; bytes.Equal(rt, pristine[48:56]) {
		t.Fatal("the refcount table did not move: the scenario misses that step")
	}
	t.Logf("%d writes", n)
	for k := range n {
		writeBytes(t, path, pristine)
		if _, err := applyOps(t, path, ops, k); err == nil {
			t.Fatalf("write %d of %d failed, yet no error", k, n)
		}
		if r := qemutest.Check(t, "qcow2", path); r.Code != 0 && r.Code != 3 {
			t.Fatalf("failure at write %d of %d: qemu-img check exit %d: %s%s", k, n, r.Code, r.Stdout, r.Stderr)
		}
		got := readBytes(t, qemutest.ToRaw(t, "qcow2", path))
		for off := 0; off < len(got); off += 512 {
			s := got[off : off+512]
			if !bytes.Equal(s, oldRaw[off:off+512]) && !bytes.Equal(s, newRaw[off:off+512]) {
				t.Fatalf("failure at write %d of %d: sector at %d is neither old nor new data", k, n, off)
			}
		}
	}
}

func readBytes(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeBytes(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
