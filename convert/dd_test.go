package convert_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/convert"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

// TestDDMatchesQemu: for each set of operands, the window ParseDD and Range
// choose, copied with Section, is byte for byte what `qemu-img dd` writes
// from the same input; operands qemu-img refuses are refused.
func TestDDMatchesQemu(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	dir := t.TempDir()
	in := filepath.Join(dir, "in.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", in, "3M")
	qemutest.IO(t, "qcow2", in, "write -P 0x11 0 1M", "write -P 0x22 1M 1M", "write -P 0x33 2M 1M")
	for i, ops := range []string{"", "bs=1M count=2", "bs=1M skip=1", "bs=512 count=3000 skip=1000", "bs=64k count=100 skip=10", "bs=1M count=9"} {
		out := filepath.Join(dir, fmt.Sprintf("qemu%d.raw", i))
		args := append(strings.Fields(ops), "if="+in, "of="+out)
		qemutest.Img(t, append([]string{"dd", "-f", "qcow2", "-O", "raw"}, args...)...)
		want, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		dd, err := convert.ParseDD(args)
		if err != nil {
			t.Fatalf("%q: %v", ops, err)
		}
		img, err := formats.Open(context.Background(), dd.In, formats.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		start, length, err := dd.Range(img.Size())
		if err != nil {
			t.Fatalf("%q: %v", ops, err)
		}
		got := make([]byte, length)
		sec := convert.Section(img, start, length)
		if _, err := sec.ReadAt(got, 0); err != nil {
			t.Fatal(err)
		}
		sec.Close()
		if string(got) != string(want) {
			t.Errorf("%q: window [%d, +%d) differs from qemu-img dd's %d bytes", ops, start, length, len(want))
		}
	}
	for _, bad := range [][]string{{"of=x"}, {"if=x"}, {"if=x", "of=y", "bs=0"}, {"if=x", "of=y", "conv=notrunc"}, {"if=x", "of=y", "skip=1E"}} {
		if _, err := convert.ParseDD(bad); err == nil {
			t.Errorf("ParseDD(%q) accepted", bad)
		}
	}
	dd, _ := convert.ParseDD([]string{"if=x", "of=y", "bs=1M", "skip=4"})
	if _, _, err := dd.Range(3 << 20); err == nil || err.Error() != "cannot skip to specified offset" {
		t.Errorf("skip past the end: %v", err)
	}
}

// dd's operands as a library call: the second MiB of the example disk.
func ExampleParseDD() {
	dd, err := convert.ParseDD([]string{"bs=1M", "skip=1", "count=2", "if=../testdata/example.qcow2", "of=part.raw"})
	if err != nil {
		panic(err)
	}
	start, length, err := dd.Range(32 << 20)
	if err != nil {
		panic(err)
	}
	fmt.Println(start>>20, length>>20)
	// Output: 1 1
}
