package formats

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		bad  bool
	}{
		{in: "0", want: 0},
		{in: "512", want: 512},
		{in: "1k", want: 1024},
		{in: "1K", want: 1024},
		{in: "64M", want: 64 << 20},
		{in: "1G", want: 1 << 30},
		{in: "2T", want: 2 << 40},
		{in: "1P", want: 1 << 50},
		{in: "7E", want: 7 << 60},
		{in: "1.5G", want: 3 << 29},
		{in: "10Mb", want: 10 << 20},
		{in: "100b", want: 100},
		{in: "8E", bad: true}, // 2^63 overflows int64
		{in: "9223372036854775808", bad: true},
		{in: "-1", bad: true},
		{in: "1.5", bad: true}, // not whole bytes
		{in: "", bad: true},
		{in: "G", bad: true},
		{in: "12Q", bad: true},
		{in: "1..2M", bad: true},
		{in: "0x10", want: 16}, // qemu_strtosz reads hex
	} {
		got, err := ParseSize(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseSize(%q) = %d, want error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

var testSpecs = []OptionSpec{
	{Name: "subformat", Type: OptString, Default: "dynamic", Values: []string{"dynamic", "fixed"}, Help: "Type"},
	{Name: "cluster_size", Type: OptSize, Default: "65536", Help: "Cluster size"},
	{Name: "lazy_refcounts", Type: OptBool, Default: "off", Help: "Lazy"},
	{Name: "refcount_bits", Type: OptInt, Default: "16", Help: "Bits"},
	{Name: "backing_file", Type: OptString, Help: "Backing"},
}

func TestParseOptions(t *testing.T) {
	o, err := ParseOptions(testSpecs, "subformat=fixed,cluster_size=2M,lazy_refcounts=on,backing_file=a,,b.img,size=1G")
	if err != nil {
		t.Fatal(err)
	}
	got := []any{o.String("subformat"), o.Size("cluster_size"), o.Bool("lazy_refcounts"), o.Int("refcount_bits"), o.String("backing_file"), o.Size("size")}
	want := []any{"fixed", int64(2 << 20), true, int64(16), "a,b.img", int64(1 << 30)}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("values (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"subformat", "cluster_size", "lazy_refcounts", "backing_file", "size"}, o.Keys()); d != "" {
		t.Errorf("keys (-want +got):\n%s", d)
	}
	if o.IsSet("refcount_bits") {
		t.Error("refcount_bits reported as set")
	}
}

func TestParseOptionsErrors(t *testing.T) {
	for _, text := range []string{
		"nosuch=1",            // unknown key
		"subformat=sparse",    // not an allowed value
		"cluster_size=12Q",    // bad size
		"lazy_refcounts=mayb", // bad bool
		"refcount_bits=x",     // bad int
		"subformat",           // no '='
		"size=-1",
	} {
		_, err := ParseOptions(testSpecs, text)
		if !errors.Is(err, ErrInvalidOption) {
			t.Errorf("ParseOptions(%q) error = %v, want ErrInvalidOption", text, err)
		}
	}
}

func TestOptionsHelp(t *testing.T) {
	help := OptionsHelp("test", testSpecs)
	for _, want := range []string{
		"Supported test options:\n",
		"  cluster_size=<size>    - Cluster size\n",
		"  lazy_refcounts=<bool (on/off)> - Lazy\n",
		"  size=<size>            - Virtual disk size\n",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("help lacks %q:\n%s", want, help)
		}
	}
}

func FuzzParseOptions(f *testing.F) {
	for _, s := range []string{"", "subformat=fixed", "cluster_size=2M,lazy_refcounts=on", "backing_file=a,,b", "size=1.5G", ",,,=", "help"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		o, err := ParseOptions(testSpecs, text)
		if err != nil {
			if !errors.Is(err, ErrInvalidOption) {
				t.Fatalf("error %v does not wrap ErrInvalidOption", err)
			}
			return
		}
		for _, k := range o.Keys() {
			_ = o.String(k)
		}
	})
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "1k", "1.5G", "8E", "-1", "1e3", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err == nil && n < 0 {
			t.Fatalf("ParseSize(%q) = %d, negative", s, n)
		}
	})
}

// TestClientOptionSyntax: what clients pass qemu-img: bare boolean keys
// (osbuild's -o subformat=fixed,force_size; compat6) mean on; hex sizes.
func TestClientOptionSyntax(t *testing.T) {
	specs := []OptionSpec{{Name: "force_size", Type: OptBool}, {Name: "subformat", Type: OptString}}
	o, err := ParseOptions(specs, "subformat=fixed,force_size")
	if err != nil || o.String("force_size") != "on" || o.String("subformat") != "fixed" {
		t.Errorf("bare boolean: %v %q", err, o.String("force_size"))
	}
	if _, err := ParseOptions(specs, "subformat"); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("a bare string key was accepted: %v", err)
	}
	for in, want := range map[string]int64{"0x100000": 1 << 20, "0x10M": 16 << 20, "0X200000": 2 << 20, "0x0": 0, "0x1E": 30, "0x1B": 27} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"0x", "0x1.8M", "0xg", "0x8000000000000000", "0x1Mb", "0x100000000000000M"} {
		if n, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", bad, n)
		}
	}
}
