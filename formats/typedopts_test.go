package formats

import (
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
