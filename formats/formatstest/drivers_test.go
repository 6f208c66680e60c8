package formatstest_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/formats/formatstest"
	"github.com/vdiskio/vdisk/internal/imagefile"
	"github.com/vdiskio/vdisk/internal/qemutest"

	_ "github.com/vdiskio/vdisk/iso"
	"github.com/vdiskio/vdisk/qcow2"
	"github.com/vdiskio/vdisk/raw"
	"github.com/vdiskio/vdisk/vdi"
	"github.com/vdiskio/vdisk/vhd"
	"github.com/vdiskio/vdisk/vhdx"
	"github.com/vdiskio/vdisk/vmdk"
)

// TestOptionTablesFromStructs: every driver's -o table is derived from its
// typed CreateOptions (one source of names, defaults and help), and the
// zero struct, the zero Options and empty -o text decode alike.
func TestOptionTablesFromStructs(t *testing.T) {
	for _, c := range []struct {
		format string
		typed  any
	}{
		{"qcow2", &qcow2.CreateOptions{}}, {"raw", &raw.CreateOptions{}}, {"vdi", &vdi.CreateOptions{}},
		{"vpc", &vhd.CreateOptions{}}, {"vhdx", &vhdx.CreateOptions{}}, {"vmdk", &vmdk.CreateOptions{}},
	} {
		drv, err := formats.Lookup(c.format)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(formats.OptionSpecsOf(c.typed), drv.CreateOptions); d != "" {
			t.Errorf("%s: the -o table is not its CreateOptions (-struct +table):\n%s", c.format, d)
		}
		fromText, err := formats.ParseOptions(drv.CreateOptions, "")
		if err != nil {
			t.Fatal(err)
		}
		fromTyped, err := formats.OptionsOf(drv.CreateOptions, c.typed)
		if err != nil {
			t.Fatal(err)
		}
		var decoded []any
		for _, o := range []formats.Options{{}, fromText, fromTyped} {
			v := reflect.New(reflect.TypeOf(c.typed).Elem()).Interface()
			if err := o.Decode(v); err != nil {
				t.Fatal(err)
			}
			decoded = append(decoded, v)
		}
		if d := cmp.Diff(decoded[0], decoded[1]); d != "" {
			t.Errorf("%s: zero Options and empty -o decode differently (-zero +text):\n%s", c.format, d)
		}
		if d := cmp.Diff(decoded[0], decoded[2]); d != "" {
			t.Errorf("%s: zero Options and the zero struct decode differently (-zero +typed):\n%s", c.format, d)
		}
	}
}

// qemuJudge has qemu-img compare the image with the reference raw file.
func qemuJudge(format string) func(t *testing.T, path, raw string) {
	return func(t *testing.T, path, raw string) {
		qemutest.RequireSame(t, format, path, "raw", raw)
	}
}

// TestDrivers runs the conformance suite on every writable driver and
// subformat, qemu-img judging each image written.
func TestDrivers(t *testing.T) {
	cases := []struct {
		format, qemu string
		options      []string
		backing      bool
		skip         map[string]string
	}{
		{"raw", "raw", []string{"", "preallocation=falloc", "preallocation=full"}, false, nil},
		{"qcow2", "qcow2", []string{"", "compat=0.10", "cluster_size=512", "cluster_size=2M", "extended_l2=on", "refcount_bits=1,lazy_refcounts=on"}, true, nil},
		{"vmdk", "vmdk", []string{"", "subformat=monolithicFlat", "subformat=twoGbMaxExtentSparse", "subformat=twoGbMaxExtentFlat", "subformat=streamOptimized"}, true, nil},
		{"vpc", "vpc", []string{"", "subformat=fixed"}, true, nil},
		{"vhdx", "vhdx", []string{"", "subformat=fixed"}, true, nil},
		{"vdi", "vdi", []string{"", "static=on"}, false, nil},
	}
	for _, c := range cases {
		for _, o := range c.options {
			name := c.format
			if o != "" {
				name += "/" + strings.ReplaceAll(o, ",", "+")
			}
			t.Run(name, func(t *testing.T) {
				formatstest.Test(t, formatstest.Case{Format: c.format, Options: o,
					Backing: c.backing && o == "", Judge: qemuJudge(c.qemu), Skip: c.skip})
			})
		}
	}
}

// TestCancelledCreate: a create that writes the whole disk
// (preallocation=full) stops at the next write once its context is
// cancelled, and convert's output leaves nothing at the path.
func TestCancelledCreate(t *testing.T) {
	for _, format := range []string{"raw", "qcow2"} {
		t.Run(format, func(t *testing.T) {
			drv, err := formats.Lookup(format)
			if err != nil {
				t.Fatal(err)
			}
			opts, err := formats.ParseOptions(drv.CreateOptions, "preallocation=full")
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			dir := t.TempDir()
			path := filepath.Join(dir, "full."+format)
			img, out, err := imagefile.Create(ctx, path, drv, 64<<20, opts, formats.OpenOptions{}, imagefile.Options{})
			if err == nil {
				img.Close()
				out.Abort()
				t.Fatal("Create with a cancelled context succeeded")
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("error %v, want context.Canceled", err)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("a cancelled create left %v", ents)
			}
		})
	}
}

// TestISOReadOnly runs the reading half of the suite on an image xorriso
// made (iso is a read-only disk of its file's bytes).
func TestISOReadOnly(t *testing.T) {
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "data.bin"), bytes.Repeat([]byte("vdisk iso "), 50000), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "x.iso")
	if r := qemutest.Exec(t, "xorriso", "-as", "mkisofs", "-quiet", "-R", "-o", path, tree); r.Code != 0 {
		t.Fatalf("xorriso: exit %d: %s", r.Code, r.Stderr)
	}
	ref, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	formatstest.TestReadOnly(t, path, ref)
}

// TestOptionsHelpLinesAreQemus: for vmdk, vpc and vdi every line of the -o
// help generated from CreateOptions is a line of `qemu-img create -f FMT
// -o help`, but for vdisk's own options, which say "vdisk" (qcow2 has its
// own test; vhdx's size and backing lines and raw's preallocation, a file
// protocol option in qemu, are worded otherwise).
func TestOptionsHelpLinesAreQemus(t *testing.T) {
	for _, format := range []string{"vmdk", "vpc", "vdi"} {
		drv, err := formats.Lookup(format)
		if err != nil {
			t.Fatal(err)
		}
		want := qemutest.Exec(t, "qemu-img", "create", "-f", format, "-o", "help").Stdout
		got := formats.OptionsHelp(drv.Name, drv.CreateOptions)
		for _, line := range strings.Split(strings.TrimRight(got, "\n"), "\n") {
			if strings.Contains(line, "vdisk") {
				continue
			}
			if !strings.Contains(want, line+"\n") {
				t.Errorf("%s: line %q is not in qemu-img's help:\n%s", format, line, want)
			}
		}
	}
}
