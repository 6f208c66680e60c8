package formats

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type testTyped struct {
	Subformat   string `opt:"subformat" default:"dynamic" values:"dynamic,fixed" help:"Type"`
	ClusterSize int64  `opt:"cluster_size,size" default:"65536" help:"Cluster size"`
	Lazy        bool   `opt:"lazy_refcounts" default:"off" help:"Lazy"`
	Bits        int64  `opt:"refcount_bits" default:"16" help:"Bits"`
	Backing     string `opt:"backing_file" help:"Backing"`
	//lint:ignore U1000 an untagged field: the derived table must skip it
	notAnOption int
}

// TestTypedOptions: the table derived from tags is the hand-written one of
// TestParseOptions, and a typed value survives OptionsOf then Decode.
func TestTypedOptions(t *testing.T) {
	if d := cmp.Diff(testSpecs, OptionSpecsOf(testTyped{})); d != "" {
		t.Fatalf("specs (-hand +derived):\n%s", d)
	}
	in := testTyped{Subformat: "fixed", ClusterSize: 2 << 20, Lazy: true, Backing: "a,b.img"}
	o, err := OptionsOf(testSpecs, in)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"subformat", "cluster_size", "lazy_refcounts", "backing_file"}, o.Keys()); d != "" {
		t.Errorf("set keys (-want +got):\n%s", d)
	}
	var out testTyped
	if err := o.Decode(&out); err != nil {
		t.Fatal(err)
	}
	in.Bits = 16 // the default, filled in
	if d := cmp.Diff(in, out, cmp.AllowUnexported(testTyped{})); d != "" {
		t.Errorf("round trip (-want +got):\n%s", d)
	}
	if _, err := OptionsOf(testSpecs, testTyped{Subformat: "sparse"}); err == nil {
		t.Error("a value outside values was accepted")
	}
}

// TestTypedOptionsPointerBool: a *bool option (default on) is unset when
// nil and explicit otherwise.
func TestTypedOptionsPointerBool(t *testing.T) {
	type withOn struct {
		Zero *bool `opt:"block_state_zero" default:"on" help:"Zero"`
	}
	specs := OptionSpecsOf(withOn{})
	off := false
	for _, c := range []struct {
		in   withOn
		want bool
		set  bool
	}{{withOn{}, true, false}, {withOn{Zero: &off}, false, true}} {
		o, err := OptionsOf(specs, c.in)
		if err != nil {
			t.Fatal(err)
		}
		if o.Bool("block_state_zero") != c.want || o.IsSet("block_state_zero") != c.set {
			t.Errorf("%+v: value %v set %v", c.in, o.Bool("block_state_zero"), o.IsSet("block_state_zero"))
		}
	}
}

// TestTypedOptionsNested: a struct field names its options with its tag as
// a prefix (qcow2's encrypt.*), in the table, OptionsOf and Decode.
func TestTypedOptionsNested(t *testing.T) {
	type inner struct {
		Format string `opt:"format" values:"aes,luks" help:"Format"`
		Iter   int64  `opt:"iter-time" help:"Iter"`
	}
	type outer struct {
		Size    int64 `opt:"cluster_size,size" default:"64K" help:"Cluster"`
		Encrypt inner `opt:"encrypt."`
	}
	specs := OptionSpecsOf(outer{})
	want := []OptionSpec{
		{Name: "cluster_size", Type: OptSize, Default: "64K", Help: "Cluster"},
		{Name: "encrypt.format", Type: OptString, Values: []string{"aes", "luks"}, Help: "Format"},
		{Name: "encrypt.iter-time", Type: OptInt, Help: "Iter"},
	}
	if d := cmp.Diff(want, specs); d != "" {
		t.Fatalf("specs (-want +got):\n%s", d)
	}
	o, err := ParseOptions(specs, "encrypt.format=luks,encrypt.iter-time=10")
	if err != nil {
		t.Fatal(err)
	}
	var got outer
	if err := o.Decode(&got); err != nil {
		t.Fatal(err)
	}
	in := outer{Size: 64 << 10, Encrypt: inner{Format: "luks", Iter: 10}}
	if d := cmp.Diff(in, got); d != "" {
		t.Errorf("Decode (-want +got):\n%s", d)
	}
	o, err = OptionsOf(specs, outer{Encrypt: inner{Format: "luks"}})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"encrypt.format"}, o.Keys()); d != "" {
		t.Errorf("OptionsOf keys (-want +got):\n%s", d)
	}
}

// TestTypedOptionsRange: min and max refuse an explicit value outside
// them, from -o text and from a typed field alike, so that 0 can mean
// "unset".
func TestTypedOptionsRange(t *testing.T) {
	type ranged struct {
		Level int `opt:"compression_level" min:"1" max:"9" help:"Level"`
	}
	specs := OptionSpecsOf(ranged{})
	if specs[0].Min != 1 || specs[0].Max != 9 {
		t.Fatalf("spec %+v: want Min 1, Max 9", specs[0])
	}
	for _, text := range []string{"compression_level=0", "compression_level=10", "compression_level=-1"} {
		if _, err := ParseOptions(specs, text); !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), "compression_level") {
			t.Errorf("%s: %v, want an ErrInvalidOption naming the key", text, err)
		}
	}
	if _, err := OptionsOf(specs, ranged{Level: 12}); !errors.Is(err, ErrInvalidOption) {
		t.Errorf("Level 12: %v, want ErrInvalidOption", err)
	}
	for _, c := range []struct {
		in   ranged
		want int
	}{{ranged{}, 0}, {ranged{Level: 9}, 9}} {
		o, err := OptionsOf(specs, c.in)
		if err != nil {
			t.Fatal(err)
		}
		var got ranged
		if err := o.Decode(&got); err != nil || got.Level != c.want {
			t.Errorf("%+v: Decode %+v, %v", c.in, got, err)
		}
	}
}

// TestTypedOptionsNilBool: a *bool without a default decodes to nil when
// unset and to the value when set, even off.
func TestTypedOptionsNilBool(t *testing.T) {
	type forced struct {
		Force *bool `opt:"force_size" help:"Force"`
	}
	specs := OptionSpecsOf(forced{})
	for text, want := range map[string]string{"": "nil", "force_size=off": "false", "force_size": "true"} {
		o, err := ParseOptions(specs, text)
		if err != nil {
			t.Fatal(err)
		}
		var got forced
		if err := o.Decode(&got); err != nil {
			t.Fatal(err)
		}
		s := "nil"
		if got.Force != nil {
			s = fmt.Sprint(*got.Force)
		}
		if s != want {
			t.Errorf("%q: Force %s, want %s", text, s, want)
		}
	}
}

// TestSplitOptions: qemu's -o syntax, items in order, ",," a comma, a
// bare key is key=on, empty items skipped.
func TestSplitOptions(t *testing.T) {
	got := SplitOptions(",compat=0.10,lazy_refcounts,backing_file=a,,b,size=1G,")
	want := []OptionItem{{Key: "compat", Value: "0.10"}, {Key: "lazy_refcounts", Value: "on", Bare: true},
		{Key: "backing_file", Value: "a,b"}, {Key: "size", Value: "1G"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

// TestDecodeZeroOptions: the zero Options (a library caller's "defaults",
// passed to a driver's package-level Create) decode to every default.
func TestDecodeZeroOptions(t *testing.T) {
	var got testTyped
	if err := (Options{}).Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := testTyped{Subformat: "dynamic", ClusterSize: 65536, Bits: 16}
	if d := cmp.Diff(want, got, cmp.AllowUnexported(testTyped{})); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}
