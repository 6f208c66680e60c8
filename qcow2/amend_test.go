package qcow2

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

// TestAmendJudgedByQemu walks an image through compat, lazy_refcounts,
// refcount_bits and size changes made by vdisk; after each step qemu-img
// info shows the new values, check is clean and the content is unchanged
// (zero clusters, allocated or not, survive the downgrade to 0.10).
func TestAmendJudgedByQemu(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	dir := t.TempDir()
	path := filepath.Join(dir, "a.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", "-o", "cluster_size=4k", path, "4M")
	qemutest.IO(t, "qcow2", path, "write -P 0x11 0 300k", "write -z 0 8k", "write -z 1M 64k", "write -P 0x12 2M 40k")
	want := readBytes(t, qemutest.ToRaw(t, "qcow2", path))
	steps := []struct {
		opts map[string]string
		info map[string]any // format-specific data fields qemu-img info must show
	}{
		{map[string]string{"refcount_bits": "8"}, map[string]any{"refcount-bits": 8.0, "compat": "1.1"}},
		{map[string]string{"lazy_refcounts": "on", "refcount_bits": "64"}, map[string]any{"refcount-bits": 64.0, "lazy-refcounts": true}},
		{map[string]string{"refcount_bits": "1"}, map[string]any{"refcount-bits": 1.0}},
		{map[string]string{"compat": "0.10", "refcount_bits": "16"}, map[string]any{"compat": "0.10", "refcount-bits": 16.0}},
		{map[string]string{"compat": "1.1"}, map[string]any{"compat": "1.1", "lazy-refcounts": false}},
		{map[string]string{"lazy_refcounts": "on", "refcount_bits": "2"}, map[string]any{"lazy-refcounts": true, "refcount-bits": 2.0}},
		{map[string]string{"size": "6M", "lazy_refcounts": "off"}, map[string]any{"lazy-refcounts": false}},
	}
	for i, s := range steps {
		if err := withWritable(t, path, func(img *Image) error { return img.Amend(context.Background(), s.opts) }); err != nil {
			t.Fatalf("step %d %v: %v", i, s.opts, err)
		}
		requireCheckClean(t, "amend", path)
		data := qemutest.Info(t, "qcow2", path)["format-specific"].(map[string]any)["data"].(map[string]any)
		for k, v := range s.info {
			if data[k] != v {
				t.Fatalf("step %d %v: qemu-img info %s = %v, want %v (%v)", i, s.opts, k, data[k], v, data)
			}
		}
		got := readBytes(t, qemutest.ToRaw(t, "qcow2", path))
		if s.opts["size"] != "" {
			want = append(want, make([]byte, len(got)-len(want))...)
		}
		if d := firstDiff(got, want); d != len(want) || len(got) != len(want) {
			t.Fatalf("step %d %v: content changed at %d", i, s.opts, d)
		}
	}
}

// TestAmendRefusals: what qemu-img amend refuses is refused before
// anything changes (the image stays clean and as it was).
func TestAmendRefusals(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	dir := t.TempDir()
	path := filepath.Join(dir, "r.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", "-o", "extended_l2=on,refcount_bits=8", path, "1M")
	before := readBytes(t, path)
	for _, c := range []struct {
		opts map[string]string
		msg  string
	}{
		{map[string]string{"cluster_size": "4096"}, "Invalid parameter 'cluster_size'"},
		{map[string]string{"nonsense": "1"}, "Invalid parameter 'nonsense'"},
		{map[string]string{"backing_file": "x"}, "Cannot amend the backing file"},
		{map[string]string{"refcount_bits": "3"}, "Refcount width must be a power of two and may not exceed 64 bits"},
		{map[string]string{"compat": "0.9"}, "Unknown compatibility level 0.9"},
		{map[string]string{"compat": "0.10"}, "compat=0.10 requires refcount_bits=16"},
		{map[string]string{"compat": "0.10", "lazy_refcounts": "on"}, "Lazy refcounts only supported with compatibility level 1.1 and above (use compat=1.1 or greater)"},
		{map[string]string{"compat": "0.10", "refcount_bits": "16"}, "Cannot downgrade an image with incompatible features 0x10 set"},
		{map[string]string{"data_file": "d", "compat": "1.1"}, "data-file can only be set for images that use an external data file"},
		{map[string]string{"data_file_raw": "on"}, "data-file-raw cannot be set on existing images"},
	} {
		err := withWritable(t, path, func(img *Image) error { return img.Amend(context.Background(), c.opts) })
		var ae *AmendError
		if !errors.As(err, &ae) || ae.Msg != c.msg {
			t.Errorf("amend %v: %v, want %q", c.opts, err, c.msg)
		}
		if !errors.Is(err, formats.ErrInvalidOption) && !errors.Is(err, formats.ErrUnsupported) {
			t.Errorf("amend %v: %v wraps no sentinel", c.opts, err)
		}
		if got := readBytes(t, path); string(got) != string(before) {
			t.Fatalf("amend %v changed the file", c.opts)
		}
	}
}
