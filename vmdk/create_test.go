package vmdk

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
)

func TestGeometry(t *testing.T) {
	for _, tc := range []struct {
		adapter     string
		size        int64
		heads, cyls int64
	}{
		{"ide", 64 << 20, 16, 130},
		{"ide", 5 << 30, 16, 10402},
		{"ide", 100 << 30, 16, 16383}, // ATA cap
		{"lsilogic", 100 << 30, 255, 13054},
		{"buslogic", 1 << 20, 255, 0},
		{"legacyESX", 10 << 30, 255, 1305},
	} {
		cfg := &createConfig{adapter: tc.adapter, size: tc.size}
		heads, cyls := cfg.geometry()
		if int64(heads) != tc.heads || cyls != tc.cyls {
			t.Errorf("%s %d: heads %d cylinders %d, want %d %d", tc.adapter, tc.size, heads, cyls, tc.heads, tc.cyls)
		}
	}
}

func TestExtentNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		want []string
	}{
		{"/x/disk.vmdk", []string{"disk-flat.vmdk", "disk-s001.vmdk", "disk-f012.vmdk"}},
		{"disk", []string{"disk-flat.vmdk", "disk-s001.vmdk", "disk-f012.vmdk"}},
		{"a.b.img", []string{"a.b-flat.img", "a.b-s001.img", "a.b-f012.img"}},
	} {
		o, _ := formats.ParseOptions(createOptions, "")
		cfg, err := newConfig(formats.CreateRequest{Name: tc.name, Size: 1 << 20, Options: o}, fixedRand{})
		if err != nil {
			t.Fatal(err)
		}
		got := []string{cfg.extentName("flat", 0), cfg.extentName("s", 1), cfg.extentName("f", 12)}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s: %s", tc.name, diff)
		}
	}
}

type fixedRand struct{}

func (fixedRand) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i)
	}
	return len(p), nil
}

func TestSplitSizes(t *testing.T) {
	got := splitSizes(5 << 30)
	want := []int64{splitExtentBytes, splitExtentBytes, 5<<30 - 2*splitExtentBytes}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatal(diff)
	}
}

func TestCreateOptionErrors(t *testing.T) {
	for _, opts := range []string{"compat6=on,hwversion=7", "backing_fmt=qcow2", "toolsversion=a\"b"} {
		o, err := formats.ParseOptions(createOptions, opts)
		if err != nil {
			continue // rejected by the option table itself
		}
		_, err = Create(formats.CreateRequest{File: fileio.NewMem("x.vmdk", nil), Name: "x.vmdk", Size: 1 << 20, Options: o})
		if err == nil {
			t.Errorf("%s accepted", opts)
		}
	}
	o, _ := formats.ParseOptions(createOptions, "subformat=monolithicFlat")
	if _, err := Create(formats.CreateRequest{File: fileio.NewMem("x.vmdk", nil), Name: "x.vmdk", Size: 1 << 20, Options: o}); err == nil {
		t.Error("flat image without Siblings accepted")
	}
}

func TestSparseAcceptsCompressedConversion(t *testing.T) {
	w := createWith(t, fileio.NewMem("x.vmdk", nil), 1<<20, "", 1)
	cw, ok := w.(formats.CompressedWriter)
	if !ok {
		t.Fatal("monolithicSparse writer is not a CompressedWriter")
	}
	if _, ok, err := cw.Compress(nil, make([]byte, 65536)); ok || err != nil {
		t.Fatalf("Compress: ok=%v err=%v, want a refusal", ok, err)
	}
}
