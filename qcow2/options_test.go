package qcow2

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

// TestTypedCreateOptions: an image made from typed options (non-default
// cluster size, compat, lazy refcounts, refcount width) has what qemu-img
// info reports for them, and the zero CreateOptions gives qemu's defaults.
func TestTypedCreateOptions(t *testing.T) {
	for _, c := range []struct {
		opts CreateOptions
		want map[string]any // qemu-img info fields
	}{
		{CreateOptions{}, map[string]any{"cluster-size": 65536.0, "compat": "1.1", "refcount-bits": 16.0, "lazy-refcounts": false}},
		{CreateOptions{ClusterSize: 1 << 20, Compat: "0.10"}, map[string]any{"cluster-size": 1048576.0, "compat": "0.10", "refcount-bits": 16.0}},
		{CreateOptions{LazyRefcounts: true, RefcountBits: 64, ExtendedL2: true}, map[string]any{"cluster-size": 65536.0, "lazy-refcounts": true, "refcount-bits": 64.0, "extended-l2": true}},
	} {
		drv, err := formats.Lookup(Name)
		if err != nil {
			t.Fatal(err)
		}
		o, err := formats.OptionsOf(drv.CreateOptions, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "typed.qcow2")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		img, err := drv.Create(context.Background(), formats.CreateRequest{File: formats.NewOSFile(f), Name: path, Size: 16 << 20, Options: o})
		if err != nil {
			t.Fatalf("%+v: %v", c.opts, err)
		}
		if err := img.Close(); err != nil {
			t.Fatal(err)
		}
		info := qemutest.Info(t, "qcow2", path)
		data := info["format-specific"].(map[string]any)["data"].(map[string]any)
		for k, v := range c.want {
			got := data[k]
			if k == "cluster-size" {
				got = info[k]
			}
			if got != v {
				t.Errorf("%+v: qemu-img info %s = %v, want %v", c.opts, k, got, v)
			}
		}
		qemutest.RequireClean(t, "qcow2", path)
		var back CreateOptions
		if err := o.Decode(&back); err != nil {
			t.Fatal(err)
		}
		if c.opts.ClusterSize != 0 && back.ClusterSize != c.opts.ClusterSize {
			t.Errorf("Decode: cluster size %d, want %d", back.ClusterSize, c.opts.ClusterSize)
		}
	}
}

// TestOptionsHelpMatchesQemu: every line of the -o help generated from
// CreateOptions is a line of `qemu-img create -f qcow2 -o help`, but for
// vdisk's own options (compression_level), which say so.
func TestOptionsHelpMatchesQemu(t *testing.T) {
	want := qemutest.Exec(t, "qemu-img", "create", "-f", "qcow2", "-o", "help").Stdout
	for _, line := range strings.Split(strings.TrimSpace(formats.OptionsHelp(Name, formats.OptionSpecsOf(CreateOptions{}))), "\n") {
		if strings.HasSuffix(line, "(vdisk only)") {
			continue
		}
		if !strings.Contains(want, line+"\n") {
			t.Errorf("line %q is not in qemu-img's help:\n%s", line, want)
		}
	}
}

// TestTypedEncryptOptions: typed encrypt.* options (EncryptOptions) make an
// image qemu-img opens with the secret and finds clean; the -o text and the
// typed value measure alike.
func TestTypedEncryptOptions(t *testing.T) {
	typed := CreateOptions{ClusterSize: 4096, Encrypt: EncryptOptions{Format: "luks", KeySecret: "sec0", IterTime: 10,
		CipherAlg: "aes-128", CipherMode: "cbc", IVGenAlg: "essiv", HashAlg: "sha512"}}
	o, err := formats.OptionsOf(createOptions, typed)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "typed.qcow2")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := Create(t.Context(), formats.CreateRequest{File: formats.NewOSFile(f), Name: path, Size: 4 << 20, Options: o,
		Open: formats.OpenOptions{Secrets: map[string][]byte{"sec0": encPass}}})
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, img, []byte("typed encryption"), 1<<20)
	if err := img.Close(); err != nil {
		t.Fatal(err)
	}
	if r := qemutest.Exec(t, "qemu-img", "check", "--object", encSecret, "--image-opts", qemuImageOpts(path)); r.Code != 0 {
		t.Fatalf("qemu-img check: %s%s", r.Stdout, r.Stderr)
	}
	info := qemutest.Exec(t, "qemu-img", "info", "--output=json", "--object", encSecret, "--image-opts", qemuImageOpts(path))
	for _, want := range []string{`"cipher-alg": "aes-128"`, `"cipher-mode": "cbc"`, `"ivgen-alg": "essiv"`, `"hash-alg": "sha512"`} {
		if !strings.Contains(info.Stdout, want) {
			t.Errorf("qemu-img info lacks %s:\n%s", want, info.Stdout)
		}
	}
	text, err := formats.ParseOptions(createOptions, "cluster_size=4096,encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10,"+
		"encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=essiv,encrypt.hash-alg=sha512")
	if err != nil {
		t.Fatal(err)
	}
	a, errA := measure(t.Context(), formats.MeasureRequest{Size: 1 << 30, Options: o})
	b, errB := measure(t.Context(), formats.MeasureRequest{Size: 1 << 30, Options: text})
	if errA != nil || errB != nil || a != b {
		t.Errorf("measure typed %+v %v, -o text %+v %v", a, errA, b, errB)
	}
}

// TestZeroOptionsMeasure: measure with the zero formats.Options{} through
// the registry answers what qemu-img measure answers with no -o.
func TestZeroOptionsMeasure(t *testing.T) {
	drv, err := formats.Lookup(Name)
	if err != nil {
		t.Fatal(err)
	}
	m, err := drv.Measure(t.Context(), formats.MeasureRequest{Size: 10 << 30})
	if err != nil {
		t.Fatal(err)
	}
	out := qemutest.Exec(t, "qemu-img", "measure", "-O", "qcow2", "--size", "10G", "--output=json").Stdout
	var want struct {
		Required       int64 `json:"required"`
		FullyAllocated int64 `json:"fully-allocated"`
	}
	if err := json.Unmarshal([]byte(out), &want); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if m.Required != want.Required || m.FullyAllocated != want.FullyAllocated {
		t.Errorf("measure %+v, qemu-img %+v", m, want)
	}
}
