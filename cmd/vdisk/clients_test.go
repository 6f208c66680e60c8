package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// The client-compatibility suite: the exact command lines KubeVirt CDI,
// Packer, osbuild, Lima and OpenStack Nova build (read from their sources:
// CDI pkg/image/qemu.go, packer-plugin-qemu builder/qemu/step_*_disk.go,
// osbuild stages/org.osbuild.qemu, Lima pkg/imgutil and pkg/qemu, Nova
// nova/privsep/qemu.py and nova/virt/images.py), each run with qemu-img and
// with vdisk called as qemu-img (a link of that name), on the same inputs,
// comparing exit codes, the JSON fields the client reads, and the images.

// client runs command lines with the real qemu-img in one directory and
// with vdisk as qemu-img in another; "{}" in an argument is the directory.
type client struct {
	t          *testing.T
	qdir, vdir string
	link       string // the test binary under the name qemu-img
	prefix     []string
}

func newClient(t *testing.T) *client {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	link := filepath.Join(bin, "qemu-img")
	if err := os.Symlink(exe, link); err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, qdir: t.TempDir(), vdir: t.TempDir(), link: link}
	// Both sides get the same source: a 64 MiB qcow2 with data, a zero
	// cluster and holes, made by qemu-img and qemu-io.
	for _, dir := range []string{c.qdir, c.vdir} {
		src := filepath.Join(dir, "src.qcow2")
		qemutest.Img(t, "create", "-q", "-f", "qcow2", src, "64M")
		qemutest.IO(t, "qcow2", src, "write -P 0x5a 0 1M", "write -P 0xa5 10M 3M", "write -z 20M 1M", "write -P 0x11 63M 64k")
	}
	return c
}

func (c *client) args(dir string, args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = strings.ReplaceAll(a, "{}", dir)
	}
	return out
}

func (c *client) exec(tool string, env []string, args []string) qemutest.Result {
	c.t.Helper()
	argv := append(append([]string{}, c.prefix...), tool)
	cmd := exec.Command(argv[0], append(argv[1:], args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := qemutest.Result{Stdout: out.String(), Stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("%v: %v", argv, err)
	}
	return r
}

// run runs args both ways and requires the same exit code, code.
func (c *client) run(code int, args ...string) (q, v qemutest.Result) {
	c.t.Helper()
	q = c.exec(qemutest.Tool(c.t, "qemu-img"), nil, c.args(c.qdir, args))
	v = c.exec(c.link, []string{"VDISK_TEST_MAIN=1"}, c.args(c.vdir, args))
	if q.Code != code || v.Code != code {
		c.t.Errorf("qemu-img %s: qemu-img exit %d (%s), vdisk exit %d (%s); want %d", strings.Join(args, " "),
			q.Code, strings.TrimSpace(q.Stderr), v.Code, strings.TrimSpace(v.Stderr), code)
	}
	return q, v
}

// runSame runs args both ways on the qemu-img side's files (read-only
// commands: the allocation two separately written copies have on disk may
// differ by a few blocks, which would say nothing about vdisk).
func (c *client) runSame(code int, args ...string) (q, v qemutest.Result) {
	c.t.Helper()
	saved := c.vdir
	c.vdir = c.qdir
	defer func() { c.vdir = saved }()
	return c.run(code, args...)
}

// sameImage: both sides' name read the same (qemu-img compare, across
// the two directories) and have the same format and virtual size.
func (c *client) sameImage(format, name string) {
	c.t.Helper()
	q, v := filepath.Join(c.qdir, name), filepath.Join(c.vdir, name)
	qi, vi := qemutest.Info(c.t, format, q), qemutest.Info(c.t, format, v)
	if qi["virtual-size"] != vi["virtual-size"] {
		c.t.Errorf("%s: virtual-size qemu-img %v, vdisk %v", name, qi["virtual-size"], vi["virtual-size"])
	}
	qemutest.RequireSame(c.t, format, q, format, v)
	if format != "raw" {
		if r := qemutest.Check(c.t, format, v); r.Code != 0 && !strings.Contains(r.Stderr, "does not support checks") {
			c.t.Errorf("qemu-img check of vdisk's %s: exit %d %s%s", name, r.Code, r.Stdout, r.Stderr)
		}
	}
}

// jsonFields parses both outputs and compares the keys a client reads,
// with the directories replaced by "{}".
func (c *client) jsonFields(q, v qemutest.Result, keys ...string) map[string]any {
	c.t.Helper()
	var qm, vm map[string]any
	norm := strings.NewReplacer(c.qdir, "{}", c.vdir, "{}")
	if err := json.Unmarshal([]byte(norm.Replace(q.Stdout)), &qm); err != nil {
		c.t.Fatalf("qemu-img JSON: %v: %s", err, q.Stdout)
	}
	if err := json.Unmarshal([]byte(norm.Replace(v.Stdout)), &vm); err != nil {
		c.t.Fatalf("vdisk JSON: %v: %s", err, v.Stdout)
	}
	for _, k := range keys {
		qv, vv := qm[k], vm[k]
		if k == "format-specific" {
			qv, vv = typeOf(qv), typeOf(vv)
		}
		if !equalJSON(qv, vv) {
			c.t.Errorf("JSON %s: qemu-img %v, vdisk %v", k, qv, vv)
		}
	}
	return vm
}

func typeOf(v any) any {
	if m, ok := v.(map[string]any); ok {
		return m["type"]
	}
	return v
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func (c *client) allocated(name string) (q, v float64) {
	qi := qemutest.Info(c.t, "raw", filepath.Join(c.qdir, name))
	vi := qemutest.Info(c.t, "raw", filepath.Join(c.vdir, name))
	return qi["actual-size"].(float64), vi["actual-size"].(float64)
}

// cdiProgress is CDI's matcherString, applied as CDI applies it: to the
// output split at carriage returns.
var cdiProgress = regexp.MustCompile(`\((\d?\d\.\d\d)\/100%\)`)

func progressValues(out string) []string {
	var vals []string
	for _, line := range strings.Split(out, "\r") {
		if m := cdiProgress.FindStringSubmatch(line); m != nil {
			vals = append(vals, m[1])
		}
	}
	return vals
}

func TestClientCDI(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	// Import: convert to raw with progress; preallocation methods in CDI's
	// order, inserted after the subcommand; cache mode none or writeback.
	for i, pre := range [][]string{nil, {"-o", "preallocation=falloc"}, {"-o", "preallocation=full"}, {"-S", "0"}} {
		name := []string{"disk.img", "falloc.img", "full.img", "s0.img"}[i]
		caches := []string{"writeback", "none"} // CDI's two modes; the preallocation retries with the first
		if pre != nil {
			caches = caches[:1]
		}
		for _, cache := range caches {
			args := append(append([]string{"convert"}, pre...), "-t", cache, "-p", "-O", "raw", "{}/src.qcow2", "{}/"+name)
			os.Remove(filepath.Join(c.qdir, name))
			os.Remove(filepath.Join(c.vdir, name))
			q, v := c.run(0, args...)
			qp, vp := progressValues(q.Stdout), progressValues(v.Stdout)
			if len(qp) == 0 || len(vp) == 0 || vp[0] != "0.00" {
				t.Errorf("%v: CDI's progress regex reads qemu-img %v, vdisk %v", args, qp, vp)
			}
			c.sameImage("raw", name)
		}
		if qa, va := c.allocated(name); (pre != nil) != (va >= 64<<20) || (pre != nil) != (qa >= 64<<20) {
			t.Errorf("%s: allocated qemu-img %v, vdisk %v", name, qa, va)
		}
	}
	// Blank images and resizing, with the preallocation CDI asks for.
	c.run(0, "create", "-f", "raw", "{}/blank.img", "104857600", "-o", "preallocation=falloc")
	c.sameImage("raw", "blank.img")
	c.run(0, "resize", "--preallocation=falloc", "-f", "raw", "{}/disk.img", "134217728")
	c.sameImage("raw", "disk.img")
	if qa, va := c.allocated("blank.img"); va < 100<<20 || qa < 100<<20 {
		t.Errorf("blank falloc image allocates qemu-img %v, vdisk %v", qa, va)
	}
	// Validation: the info fields CDI reads, for every format it accepts
	// and for an ISO (which it accepts as raw).
	for _, f := range []string{"raw", "qcow2", "vmdk", "vdi", "vpc", "vhdx"} {
		name := "info." + f
		qemutest.Img(t, "convert", "-O", f, filepath.Join(c.qdir, "src.qcow2"), filepath.Join(c.qdir, name))
		qemutest.Img(t, "convert", "-O", f, filepath.Join(c.vdir, "src.qcow2"), filepath.Join(c.vdir, name))
		q, v := c.runSame(0, "info", "--output=json", "{}/"+name)
		c.jsonFields(q, v, "format", "backing-filename", "virtual-size", "actual-size")
	}
	c.run(1, "info", "--output=json", "{}/missing.img")
}

func TestClientPacker(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	// disk_image with use_backing_file: the downloaded image, absolute,
	// named .iso by Packer's cache, is the backing file.
	for _, dir := range []string{c.qdir, c.vdir} {
		if err := os.Mkdir(filepath.Join(dir, "cache"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "src.qcow2"), filepath.Join(dir, "cache", "x.iso")); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(filepath.Join(dir, "output"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	c.run(0, "create", "-f", "qcow2", "-b", "{}/cache/x.iso", "-F", "qcow2", "{}/output/packer-vm", "40960M")
	q, v := c.run(0, "info", "--output=json", "{}/output/packer-vm")
	c.jsonFields(q, v, "format", "virtual-size", "backing-filename", "full-backing-filename", "backing-filename-format")
	c.sameImage("qcow2", "output/packer-vm")
	c.run(0, "resize", "-f", "qcow2", "{}/output/packer-vm", "50G")
	c.sameImage("qcow2", "output/packer-vm")
	// The final compaction and compression.
	c.run(0, "convert", "-c", "-O", "qcow2", "{}/output/packer-vm", "{}/output/packer-vm.convert")
	c.sameImage("qcow2", "output/packer-vm.convert")
	c.run(0, "convert", "-O", "qcow2", "{}/output/packer-vm", "{}/output/packer-vm.copy")
	c.sameImage("qcow2", "output/packer-vm.copy")
}

func TestClientOsbuild(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	for _, tc := range []struct {
		format string
		args   []string
		name   string
	}{
		{"qcow2", []string{"-c"}, "disk.qcow2"},
		{"qcow2", []string{"-c", "-o", "compat=1.1", "-m", "8"}, "disk-m8.qcow2"},
		{"qcow2", []string{"-c", "-o", "compat=0.10"}, "disk-010.qcow2"},
		{"vmdk", []string{"-c", "-o", "adapter_type=lsilogic,compat6,subformat=streamOptimized"}, "disk.vmdk"},
		{"vmdk", []string{"-c", "-o", "subformat=streamOptimized"}, "disk-so.vmdk"},
		{"vpc", []string{"-o", "subformat=fixed,force_size"}, "disk.vhd"},
		{"vpc", []string{"-o", "subformat=dynamic,force_size"}, "disk-dyn.vhd"},
		{"vdi", nil, "disk.vdi"},
		{"vhdx", nil, "disk.vhdx"},
	} {
		args := append(append([]string{"convert", "-O", tc.format}, tc.args...), "{}/src.qcow2", "{}/"+tc.name)
		c.run(0, args...)
		c.sameImage(tc.format, tc.name)
	}
	// The fixed VHD for Azure: the same length as qemu-img's (force_size
	// keeps the size exact, footer included).
	qs, _ := os.Stat(filepath.Join(c.qdir, "disk.vhd"))
	vs, _ := os.Stat(filepath.Join(c.vdir, "disk.vhd"))
	if qs.Size() != vs.Size() {
		t.Errorf("fixed VHD: qemu-img %d bytes, vdisk %d", qs.Size(), vs.Size())
	}
}

func TestClientLima(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	// The base disk is converted to raw (or kept as qcow2) and checked
	// with AcceptableAsBasedisk's fields; the diff disk has an absolute
	// backing file.
	c.run(0, "convert", "-O", "raw", "{}/src.qcow2", "{}/basedisk")
	c.sameImage("raw", "basedisk")
	for _, base := range []string{"basedisk", "src.qcow2"} {
		q, v := c.run(0, "info", "--output=json", "--force-share", "{}/"+base)
		c.jsonFields(q, v, "filename", "format", "virtual-size", "backing-filename", "full-backing-filename", "format-specific", "children")
	}
	c.run(0, "create", "-f", "qcow2", "-F", "raw", "-b", "{}/basedisk", "{}/diffdisk", "107374182400")
	q, v := c.run(0, "info", "--output=json", "--force-share", "{}/diffdisk")
	c.jsonFields(q, v, "filename", "format", "virtual-size", "backing-filename", "full-backing-filename", "backing-filename-format", "format-specific")
	c.sameImage("qcow2", "diffdisk")
	q, v = c.run(0, "snapshot", "-l", "{}/diffdisk")
	if q.Stdout != v.Stdout {
		t.Errorf("snapshot -l: qemu-img %q, vdisk %q", q.Stdout, v.Stdout)
	}
	// Snapshots made by qemu-img are listed the same way (one image read by
	// both: two images snapshotted a second apart list different dates).
	qemutest.Img(t, "snapshot", "-c", "snap1", filepath.Join(c.qdir, "src.qcow2"))
	q, v = c.runSame(0, "snapshot", "-l", "{}/src.qcow2")
	if q.Stdout != strings.ReplaceAll(v.Stdout, c.vdir, c.qdir) || !strings.Contains(v.Stdout, "snap1") {
		t.Errorf("snapshot -l:\nqemu-img %q\nvdisk    %q", q.Stdout, v.Stdout)
	}
	// limactl snapshot create/apply/delete/list on a stopped instance run
	// qemu-img snapshot -c/-a/-d/-l TAG diffdisk.
	for _, dir := range []string{c.qdir, c.vdir} {
		qemutest.IO(t, "qcow2", filepath.Join(dir, "diffdisk"), "write -P 0x71 0 2M", "write -P 0x72 50G 64k")
	}
	c.run(0, "snapshot", "-c", "lima1", "{}/diffdisk")
	for _, dir := range []string{c.qdir, c.vdir} {
		qemutest.IO(t, "qcow2", filepath.Join(dir, "diffdisk"), "write -P 0x73 1M 2M", "write -z 50G 4k")
	}
	c.run(0, "snapshot", "-c", "lima2", "{}/diffdisk")
	q, v = c.run(0, "snapshot", "-l", "{}/diffdisk")
	if snapshotTags(q.Stdout) != snapshotTags(v.Stdout) || !strings.Contains(v.Stdout, "lima2") {
		t.Errorf("snapshot -l after -c:\nqemu-img %q\nvdisk    %q", q.Stdout, v.Stdout)
	}
	c.run(0, "snapshot", "-a", "lima1", "{}/diffdisk")
	c.sameImage("qcow2", "diffdisk")
	c.run(0, "snapshot", "-d", "lima1", "{}/diffdisk")
	c.sameImage("qcow2", "diffdisk")
	q, v = c.run(1, "snapshot", "-d", "lima1", "{}/diffdisk")
	q2, v2 := c.run(1, "snapshot", "-a", "nope", "{}/diffdisk")
	for _, p := range [][2]string{{q.Stderr, v.Stderr}, {q2.Stderr, v2.Stderr}} {
		if p[0] != p[1] {
			t.Errorf("snapshot error: qemu-img %q, vdisk %q", p[0], p[1])
		}
	}
	q, v = c.run(0, "snapshot", "-l", "{}/diffdisk")
	if snapshotTags(q.Stdout) != snapshotTags(v.Stdout) {
		t.Errorf("snapshot -l after -d:\nqemu-img %q\nvdisk    %q", q.Stdout, v.Stdout)
	}
	// Data disks: created, then grown.
	c.run(0, "create", "-f", "raw", "{}/datadisk", "10737418240")
	c.run(0, "resize", "-f", "raw", "{}/datadisk", "21474836480")
	c.sameImage("raw", "datadisk")
}

// snapshotTags keeps the ID, TAG and VM SIZE columns of snapshot -l (the
// dates of two images snapshotted apart differ).
func snapshotTags(out string) string {
	var b strings.Builder
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 4 {
			b.WriteString(strings.Join(f[:4], " ") + "\n")
		}
	}
	return b.String()
}

func TestClientNova(t *testing.T) {
	t.Parallel()
	c := newClient(t)
	// Nova runs info under prlimit (1 GiB address space, 30 s of CPU).
	switch prlimit, err := exec.LookPath("prlimit"); {
	case raceEnabled:
		t.Log("race detector on: info runs without Nova's address-space limit")
	case err != nil:
		t.Log("prlimit not installed: info runs without Nova's limits")
	default:
		c.prefix = []string{prlimit, "--as=1073741824", "--cpu=30"}
	}
	q, v := c.runSame(0, "info", "{}/src.qcow2", "--force-share", "--output=json")
	c.jsonFields(q, v, "virtual-size", "filename", "cluster-size", "format", "actual-size", "dirty-flag", "format-specific")
	q, v = c.runSame(0, "info", "{}/src.qcow2", "--force-share", "--output=json", "-f", "qcow2")
	c.jsonFields(q, v, "virtual-size", "format")
	_, v = c.run(1, "info", "{}/gone.qcow2", "--force-share", "--output=json")
	if !strings.Contains(v.Stderr, "No such file or directory") {
		t.Errorf("a missing disk: vdisk says %q; Nova looks for 'No such file or directory'", v.Stderr)
	}
	c.prefix = nil
	for _, cache := range []string{"none", "writeback", "writethrough"} {
		name := "disk-" + cache
		c.run(0, "convert", "-t", cache, "-O", "raw", "-f", "qcow2", "{}/src.qcow2", "{}/"+name)
		c.sameImage("raw", name)
		c.run(0, "convert", "-t", cache, "-O", "qcow2", "-f", "qcow2", "-c", "{}/src.qcow2", "{}/"+name+".qcow2")
		c.sameImage("qcow2", name+".qcow2")
	}
}

// TestClientBitmaps: the qemu-img lines of changed-block-tracking backups
// of a stopped VM (OpenNebula's incremental qcow2 backups name bitmaps
// one-VMID-N; virtnbdbackup's offline mode lists them from info JSON):
// add a bitmap at each backup, remove the older one, list them with info
// --output=json, copy them with convert --bitmaps. Both tools give the same
// exit codes, the same bitmaps in info and the same dirty ranges.
func TestClientBitmaps(t *testing.T) {
	t.Parallel()
	qemutest.Tool(t, "nbdinfo")
	c := newClient(t)
	bitmaps := func(q, v qemutest.Result) {
		t.Helper()
		var qm, vm map[string]any
		if json.Unmarshal([]byte(q.Stdout), &qm) != nil || json.Unmarshal([]byte(v.Stdout), &vm) != nil {
			t.Fatalf("info JSON: %q %q", q.Stdout, v.Stdout)
		}
		get := func(m map[string]any) any {
			return m["format-specific"].(map[string]any)["data"].(map[string]any)["bitmaps"]
		}
		if !equalJSON(get(qm), get(vm)) {
			t.Errorf("bitmaps: qemu-img %v, vdisk %v", get(qm), get(vm))
		}
	}
	c.run(0, "bitmap", "--add", "{}/src.qcow2", "one-0-0")
	for _, dir := range []string{c.qdir, c.vdir} {
		qemutest.IO(t, "qcow2", filepath.Join(dir, "src.qcow2"), "write -P 0x33 2M 1M", "write -z 10M 64k")
	}
	c.run(0, "bitmap", "--add", "{}/src.qcow2", "one-0-1")
	bitmaps(c.run(0, "info", "--output=json", "--force-share", "{}/src.qcow2"))
	for _, name := range []string{"one-0-0", "one-0-1"} {
		if d := cmp.Diff(qemutest.DirtyRanges(t, filepath.Join(c.qdir, "src.qcow2"), name), qemutest.DirtyRanges(t, filepath.Join(c.vdir, "src.qcow2"), name)); d != "" {
			t.Errorf("%s dirty ranges (-qemu-img +vdisk):\n%s", name, d)
		}
	}
	c.run(0, "bitmap", "--remove", "{}/src.qcow2", "one-0-0")
	c.run(1, "bitmap", "--remove", "{}/src.qcow2", "one-0-0")
	bitmaps(c.run(0, "info", "--output=json", "--force-share", "{}/src.qcow2"))
	c.run(0, "convert", "-O", "qcow2", "--bitmaps", "{}/src.qcow2", "{}/copy.qcow2")
	c.sameImage("qcow2", "copy.qcow2")
	bitmaps(c.run(0, "info", "--output=json", "{}/copy.qcow2"))
}
