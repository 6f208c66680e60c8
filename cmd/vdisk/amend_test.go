package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// TestAmendLikeQemu runs the same amend lines through qemu-img and vdisk on
// copies of one image: the same exit codes, the same messages (one or two
// lines) for what is refused, and for what is done the same qemu-img info
// fields and a clean check.
func TestAmendLikeQemu(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q, v := filepath.Join(dir, "q.qcow2"), filepath.Join(dir, "v.qcow2")
	for _, p := range []string{q, v} {
		// 4 KiB clusters: qemu-img amend takes a time that grows steeply
		// with the cluster size to change refcount_bits (64 KiB: seconds).
		qemutest.Img(t, "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", p, "8M")
		qemutest.IO(t, "qcow2", p, "write -P 0x21 0 1M", "write -z 2M 64k")
	}
	for _, o := range []string{"cluster_size=65536", "foo=bar", "backing_file=x", "refcount_bits=3", "compat=0.9",
		"refcount_bits=8,lazy_refcounts=on", "compat=0.10", "refcount_bits=16,lazy_refcounts=off", "compat=0.10",
		"lazy_refcounts=on", "compat=1.1,refcount_bits=64"} {
		qr := qemutest.Exec(t, "qemu-img", "amend", "-o", o, q)
		_, stderr, code := vdisk(t, "amend", "-o", o, v)
		if code != qr.Code || strings.TrimPrefix(stderr, "vdisk: ") != strings.TrimPrefix(qr.Stderr, "qemu-img: ") {
			t.Errorf("amend -o %s: qemu-img exit %d %q, vdisk exit %d %q", o, qr.Code, qr.Stderr, code, stderr)
		}
		if code != 0 {
			continue // refused: TestAmendRefusals shows the file is untouched
		}
		qemutest.RequireClean(t, "qcow2", v)
		qi := qemutest.Info(t, "qcow2", q)["format-specific"].(map[string]any)["data"].(map[string]any)
		vi := qemutest.Info(t, "qcow2", v)["format-specific"].(map[string]any)["data"].(map[string]any)
		for _, k := range []string{"compat", "lazy-refcounts", "refcount-bits"} {
			if qi[k] != vi[k] {
				t.Errorf("after amend -o %s: %s qemu-img %v, vdisk %v", o, k, qi[k], vi[k])
			}
		}
		qemutest.RequireSame(t, "qcow2", q, "qcow2", v)
	}
	if out, _, code := vdisk(t, "amend", "-o", "help", v); code != 0 || !strings.Contains(out, "refcount_bits=") {
		t.Errorf("amend -o help: exit %d %q", code, out)
	}
}

// TestAmendEncryptLikeQemu manages the LUKS key slots of an encrypted
// qcow2 with the same amend lines through qemu-img and vdisk, on copies:
// the same exit codes and messages for every refusal (qemu's checks, in
// qemu's order), and after each change the same key slots active (qemu-img
// info) and the same secrets opening the image (qemu-io reads the data
// with them, and fails with the others); qemu-img check clean. --force
// overwrites an active slot and erases the last one.
func TestAmendEncryptLikeQemu(t *testing.T) {
	t.Parallel()
	qemutest.Tool(t, "qemu-io")
	dir := t.TempDir()
	objs := []string{"--object", "secret,id=sec0,data=alpha", "--object", "secret,id=sec1,data=bravo", "--object", "secret,id=sec2,data=charlie"}
	spec := func(p, sec string) string { return "driver=qcow2,file.filename=" + p + ",encrypt.key-secret=" + sec }
	q, v := filepath.Join(dir, "q.qcow2"), filepath.Join(dir, "v.qcow2")
	qemutest.Img(t, append(append([]string{"create", "-q", "-f", "qcow2"}, objs...), "-o", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10", q, "1M")...)
	r := qemutest.Exec(t, "qemu-io", append(objs, "--image-opts", "-c", "write -P 0x5a 0 64k", spec(q, "sec0"))...)
	if r.Code != 0 {
		t.Fatalf("qemu-io write: %s", r.Stderr)
	}
	copyFile(t, q, v)
	opens := func(p string) string {
		var out []string
		for _, sec := range []string{"sec0", "sec1", "sec2"} {
			r := qemutest.Exec(t, "qemu-io", append(objs, "--image-opts", "-c", "read -P 0x5a 0 64k", spec(p, sec))...)
			out = append(out, fmt.Sprintf("%s:%v", sec, r.Code == 0 && !strings.Contains(r.Stdout, "Pattern verification failed")))
		}
		return strings.Join(out, " ")
	}
	slots := func(p string) string {
		r := qemutest.Exec(t, "qemu-img", append(append([]string{"info"}, objs...), "--output=json", "--image-opts", spec(p, "sec0"))...)
		if r.Code != 0 {
			// sec0's slot may be gone: any secret that opens it.
			r = qemutest.Exec(t, "qemu-img", append(append([]string{"info"}, objs...), "--output=json", "--image-opts", spec(p, "sec2"))...)
		}
		var info struct {
			Spec struct {
				Data struct {
					Encrypt struct {
						Slots []struct{ Active bool }
					}
				}
			} `json:"format-specific"`
		}
		if err := json.Unmarshal([]byte(r.Stdout), &info); err != nil {
			t.Fatalf("qemu-img info %s: %v %s", p, err, r.Stderr)
		}
		return fmt.Sprint(info.Spec.Data.Encrypt.Slots)
	}
	type step struct {
		opener, opts string
		force        bool
	}
	for _, s := range []step{
		{"sec0", "encrypt.new-secret=sec1", false},
		{"sec0", "encrypt.state=on", false},
		{"sec0", "encrypt.key-secret=sec1", false},
		{"sec0", "encrypt.state=active", false},
		{"sec0", "encrypt.state=active,encrypt.new-secret=sec1,encrypt.old-secret=sec0", false},
		{"sec0", "encrypt.state=active,encrypt.new-secret=sec1,encrypt.keyslot=x", false},
		{"sec0", "encrypt.state=active,encrypt.new-secret=nosuch,encrypt.iter-time=10", false},
		{"sec0", "encrypt.state=active,encrypt.new-secret=sec1,encrypt.iter-time=10", false}, // first free: 1
		{"sec0", "encrypt.state=active,encrypt.new-secret=sec2,encrypt.keyslot=1,encrypt.iter-time=10", false},
		{"sec0", "encrypt.state=active,encrypt.new-secret=sec2,encrypt.keyslot=8", false},
		{"sec0", "encrypt.state=active,encrypt.new-secret=sec2,encrypt.keyslot=-1", false},
		{"sec1", "encrypt.state=active,encrypt.new-secret=sec2,encrypt.keyslot=5,encrypt.iter-time=10", false},
		{"sec0", "encrypt.state=inactive", false},
		{"sec0", "encrypt.state=inactive,encrypt.new-secret=sec1", false},
		{"sec0", "encrypt.state=inactive,encrypt.iter-time=10", false},
		{"sec0", "encrypt.state=inactive,encrypt.keyslot=3", false},
		{"sec0", "encrypt.state=inactive,encrypt.keyslot=9", false},
		{"sec0", "encrypt.state=inactive,encrypt.keyslot=1,encrypt.old-secret=sec0", false},
		{"sec0", "encrypt.state=inactive,encrypt.old-secret=nosuch", false},
		{"sec0", "encrypt.state=inactive,encrypt.keyslot=1,encrypt.old-secret=sec1", false},
		{"sec0", "encrypt.state=inactive,encrypt.old-secret=sec1", false},
		{"sec2", "encrypt.state=inactive,encrypt.old-secret=sec0", false},
		{"sec2", "encrypt.state=inactive,encrypt.keyslot=5", false},
		{"sec2", "encrypt.state=inactive,encrypt.old-secret=sec2", false},
		{"sec2", "encrypt.state=active,encrypt.new-secret=sec0,encrypt.keyslot=5,encrypt.iter-time=10", true},
	} {
		args := append(append([]string{"amend"}, objs...), "--image-opts")
		if s.force {
			args = append(args, "--force")
		}
		args = append(args, "-o", s.opts)
		qr := qemutest.Exec(t, "qemu-img", append(args, spec(q, s.opener))...)
		_, stderr, code := vdisk(t, append(args, spec(v, s.opener))...)
		// The same words (qemu ends one message with a space).
		qmsg := strings.Fields(strings.TrimPrefix(qr.Stderr, "qemu-img: "))
		vmsg := strings.Fields(strings.TrimPrefix(stderr, "vdisk: "))
		if code != qr.Code || !slices.Equal(qmsg, vmsg) {
			t.Fatalf("amend --force=%v -o %s (opened with %s):\nqemu-img exit %d %q\n   vdisk exit %d %q", s.force, s.opts, s.opener, qr.Code, qr.Stderr, code, stderr)
		}
		if code != 0 {
			continue
		}
		if qs, vs := slots(q), slots(v); qs != vs {
			t.Fatalf("after amend -o %s: key slots active (qemu-img info): qemu's copy %s, vdisk's %s", s.opts, qs, vs)
		}
		if qo, vo := opens(q), opens(v); qo != vo {
			t.Fatalf("after amend -o %s: secrets that open the image: qemu's copy %s, vdisk's %s", s.opts, qo, vo)
		}
	}
	if r := qemutest.Exec(t, "qemu-img", append(append([]string{"check"}, objs...), "--image-opts", spec(v, "sec0"))...); r.Code != 0 {
		t.Fatalf("qemu-img check: exit %d %s%s", r.Code, r.Stdout, r.Stderr)
	}
	// --force erases the last slot too: no secret opens the image then.
	args := append(append([]string{"amend"}, objs...), "--image-opts", "--force", "-o", "encrypt.state=inactive,encrypt.old-secret=sec0", spec(v, "sec0"))
	if _, stderr, code := vdisk(t, args...); code != 0 {
		t.Fatalf("amend --force erasing the last slot: exit %d %s", code, stderr)
	}
	if o := opens(v); o != "sec0:false sec1:false sec2:false" {
		t.Fatalf("after erasing every slot: %s", o)
	}
}

// TestAmendDataFileLikeQemu: data_file and data_file_raw through qemu-img
// amend and vdisk amend on two images with external data files of their
// own: the same exit codes and messages; a renamed data file is the one
// qemu-img info names and opens (the content compares identical after
// the files are moved to their new names); data_file= drops the name, so
// that neither opens any more without being told its data file.
func TestAmendDataFileLikeQemu(t *testing.T) {
	t.Parallel()
	qemutest.Tool(t, "qemu-img")
	dir := t.TempDir()
	q, v := filepath.Join(dir, "q.qcow2"), filepath.Join(dir, "v.qcow2")
	for _, p := range []string{q, v} {
		qemutest.Img(t, "create", "-q", "-f", "qcow2", "-o", "data_file="+p+".data", p, "4M")
		qemutest.IO(t, "qcow2", p, "write -P 0x42 0 1M", "write -z 2M 64k")
	}
	plain := filepath.Join(dir, "plain.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", plain, "1M")
	same := func(opts string, qp, vp string) int {
		t.Helper()
		qr := qemutest.Exec(t, "qemu-img", "amend", "-o", strings.ReplaceAll(opts, "@", qp), qp)
		_, stderr, code := vdisk(t, "amend", "-o", strings.ReplaceAll(opts, "@", vp), vp)
		if code != qr.Code || strings.TrimPrefix(stderr, "vdisk: ") != strings.TrimPrefix(qr.Stderr, "qemu-img: ") {
			t.Fatalf("amend -o %s: qemu-img exit %d %q, vdisk exit %d %q", opts, qr.Code, qr.Stderr, code, stderr)
		}
		return code
	}
	for _, o := range []string{"data_file=x", "data_file_raw=on", "data_file_raw=off"} {
		same(o, plain, plain)
	}
	for _, o := range []string{"data_file_raw=on", "compat=0.10", "data_file_raw=off", "data_file=@.moved"} {
		if same(o, q, v) != 0 || strings.HasPrefix(o, "data_file=") {
			continue // a renamed data file is judged once moved
		}
		qemutest.RequireClean(t, "qcow2", v)
		qi := qemutest.Info(t, "qcow2", q)["format-specific"].(map[string]any)["data"].(map[string]any)
		vi := qemutest.Info(t, "qcow2", v)["format-specific"].(map[string]any)["data"].(map[string]any)
		if qi["data-file"] != strings.Replace(vi["data-file"].(string), v, q, 1) || qi["data-file-raw"] != vi["data-file-raw"] {
			t.Fatalf("after amend -o %s: qemu-img info data-file %v raw %v, vdisk's %v raw %v", o, qi["data-file"], qi["data-file-raw"], vi["data-file"], vi["data-file-raw"])
		}
	}
	for _, p := range []string{q, v} {
		if err := os.Rename(p+".data", p+".moved"); err != nil {
			t.Fatal(err)
		}
	}
	qemutest.RequireClean(t, "qcow2", v)
	qemutest.RequireSame(t, "qcow2", q, "qcow2", v)
	if vi := qemutest.Info(t, "qcow2", v)["format-specific"].(map[string]any)["data"].(map[string]any); vi["data-file"] != v+".moved" {
		t.Fatalf("after amend -o data_file=%s.moved: qemu-img info data-file %v", v, vi["data-file"])
	}
	same("data_file=", q, v)
	if qr, vr := qemutest.Exec(t, "qemu-img", "check", q), qemutest.Exec(t, "qemu-img", "check", v); qr.Code == 0 || vr.Code != qr.Code {
		t.Fatalf("after data_file= an image opens without its data file: qemu's exit %d, vdisk's %d %s", qr.Code, vr.Code, vr.Stderr)
	}
}
