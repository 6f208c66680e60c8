//go:build linux || darwin || freebsd

package main

import (
	"crypto/sha256"
	hexenc "encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// ovfCheck is the second OVF parser (python3-lxml): it checks what the
// DMTF OVF 1.x envelope schema (DSP8023) and the CIM RASD/VSSD schemas
// require of the elements vdisk writes, and what VirtualBox's OVF reader
// (Main/xml/ovfreader.cpp) insists on, then prints what it read as JSON.
const ovfCheck = `
import json, sys
from lxml import etree
OVF = "http://schemas.dmtf.org/ovf/envelope/1"
RASD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
VSSD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
def q(ns, n): return "{%s}%s" % (ns, n)
def need(cond, what):
    if not cond:
        print("OVF check failed: " + what); sys.exit(1)
doc = etree.parse(sys.argv[1], etree.XMLParser(resolve_entities=False, no_network=True))
env = doc.getroot()
need(env.tag == q(OVF, "Envelope"), "root is ovf:Envelope in the OVF 1.x namespace")
kids = [c.tag for c in env if isinstance(c.tag, str)]
need(kids and kids[0] == q(OVF, "References"), "References is the Envelope's first child")
need(kids[-1] == q(OVF, "VirtualSystem"), "the content (VirtualSystem) follows the sections")
files = {}
for f in env.find(q(OVF, "References")).findall(q(OVF, "File")):
    need(f.get(q(OVF, "id")) and f.get(q(OVF, "href")), "File has ovf:id and ovf:href")
    files[f.get(q(OVF, "id"))] = f
def section(el, name):
    s = el.find(q(OVF, name))
    need(s is not None, name + " present")
    first = [c for c in s if isinstance(c.tag, str)][0]
    need(first.tag == q(OVF, "Info"), name + " starts with its Info")
    return s
ds = section(env, "DiskSection")
disks = {}
for d in ds.findall(q(OVF, "Disk")):
    for a in ("diskId", "capacity", "format"):
        need(d.get(q(OVF, a)), "Disk has ovf:" + a)
    need(d.get(q(OVF, "fileRef")) in files, "Disk's fileRef names a References File")
    units = d.get(q(OVF, "capacityAllocationUnits"), "byte")
    mult = 1
    if units != "byte":
        need(units.startswith("byte * 2^"), "capacity units byte * 2^N")
        mult = 1 << int(units[len("byte * 2^"):])
    disks[d.get(q(OVF, "diskId"))] = {"capacity": int(d.get(q(OVF, "capacity"))) * mult,
        "href": files[d.get(q(OVF, "fileRef"))].get(q(OVF, "href")),
        "size": int(files[d.get(q(OVF, "fileRef"))].get(q(OVF, "size"), "-1")),
        "format": d.get(q(OVF, "format"))}
vs = env.find(q(OVF, "VirtualSystem"))
need(vs.get(q(OVF, "id")), "VirtualSystem has ovf:id")
need([c for c in vs if isinstance(c.tag, str)][0].tag == q(OVF, "Info"), "VirtualSystem starts with its Info")
os_ = section(vs, "OperatingSystemSection")
need(os_.get(q(OVF, "id"), "").isdigit(), "OperatingSystemSection has a numeric ovf:id")
hw = section(vs, "VirtualHardwareSection")
system = hw.find(q(OVF, "System"))
need(system is not None and system.find(q(VSSD, "VirtualSystemType")) is not None, "System with vssd:VirtualSystemType")
names = [c.tag for c in system if isinstance(c.tag, str)]
need(names == sorted(names), "vssd elements in the schema's order")
out = {"name": vs.findtext(q(OVF, "Name")), "type": system.findtext(q(VSSD, "VirtualSystemType")), "disks": disks}
items = {}
for it in hw.findall(q(OVF, "Item")):
    names = [etree.QName(c).localname for c in it if isinstance(c.tag, str)]
    need(names == sorted(names), "rasd elements in the schema's (alphabetical) order: %s" % names)
    for n in ("ElementName", "InstanceID", "ResourceType"):
        need(it.find(q(RASD, n)) is not None, "Item has rasd:" + n)
    items[it.findtext(q(RASD, "InstanceID"))] = it
for iid, it in items.items():
    rt = int(it.findtext(q(RASD, "ResourceType")))
    if rt == 3:
        n = int(it.findtext(q(RASD, "VirtualQuantity")))
        need(0 < n < 65535, "CPU count")
        out["cpus"] = n
    elif rt == 4:
        need(it.findtext(q(RASD, "AllocationUnits")) == "byte * 2^20", "memory in byte * 2^20 (VirtualBox)")
        out["memory_mib"] = int(it.findtext(q(RASD, "VirtualQuantity")))
    elif rt in (5, 6):
        out["controller"] = "%d/%s" % (rt, it.findtext(q(RASD, "ResourceSubType")))
    elif rt == 17:
        parent = it.findtext(q(RASD, "Parent"))
        need(parent in items and int(items[parent].findtext(q(RASD, "ResourceType"))) in (5, 6), "the disk's Parent is its controller")
        hr = it.findtext(q(RASD, "HostResource"))
        need(hr.startswith("ovf:/disk/") and hr[len("ovf:/disk/"):] in disks, "HostResource ovf:/disk/ID names a Disk")
        out["disk_on"] = hr[len("ovf:/disk/"):]
print(json.dumps(out))
`

// lxmlPython is a python3 that imports lxml (Debian's python3-lxml is
// for /usr/bin/python3), or the test skips (fails under
// VDISK_REQUIRE_QEMU=1, as a missing oracle does).
func lxmlPython(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		if exec.Command(p, "-c", "import lxml.etree").Run() == nil {
			return p
		}
	}
	if os.Getenv("VDISK_REQUIRE_QEMU") == "1" {
		t.Fatal("python3 with lxml (python3-lxml) not found and VDISK_REQUIRE_QEMU=1")
	}
	t.Skip("python3 with lxml not found")
	return ""
}

type ovfSummary struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	CPUs       int    `json:"cpus"`
	MemoryMiB  int    `json:"memory_mib"`
	Controller string `json:"controller"`
	DiskOn     string `json:"disk_on"`
	Disks      map[string]struct {
		Capacity int64  `json:"capacity"`
		Href     string `json:"href"`
		Size     int64  `json:"size"`
		Format   string `json:"format"`
	} `json:"disks"`
}

func sha256File(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hexenc.EncodeToString(s[:])
}

// TestOVAOutput: convert -O ova, judged by GNU tar (members, order,
// ustar), sha256 of the extracted files (the manifest), the python3-lxml
// OVF check (required elements, namespaces, VirtualBox's needs) and
// qemu-img (the VMDK inside is the source, and checks clean); vdisk reads
// the OVA back.
func TestOVAOutput(t *testing.T) {
	t.Parallel()
	py := lxmlPython(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", src, "20M")
	qemutest.IO(t, "qcow2", src, "write -P 0x5a 0 1M", "write -P 0xa5 9M 3M", "write -P 0x11 19M 4k")
	for _, tc := range []struct {
		opts, name, controller string
		cpus, memMiB           int
	}{
		{"", "vm", "6/lsilogic", 1, 1024},
		{"adapter_type=ide,cpus=4,memory=2G", "vm", "5/PIIX4", 4, 2048},
		{"adapter_type=buslogic", "vm", "6/buslogic", 1, 1024},
		{"adapter_type=lsisas1068,name=web-01", "web-01", "6/lsilogicsas", 1, 1024},
		{"adapter_type=pvscsi,memory=512M,cpus=2", "vm", "6/VirtualSCSI", 2, 512},
	} {
		t.Run(tc.controller, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "vm.ova")
			args := []string{"convert", "-O", "ova", src, out}
			if tc.opts != "" {
				args = []string{"convert", "-O", "ova", "-o", tc.opts, src, out}
			}
			if _, stderr, code := vdisk(t, args...); code != 0 {
				t.Fatalf("convert: %s", stderr)
			}
			list := qemutest.Exec(t, "tar", "--list", "-f", out)
			want := []string{tc.name + ".ovf", tc.name + ".mf", tc.name + "-disk1.vmdk"}
			if got := strings.Fields(list.Stdout); list.Code != 0 || strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("tar lists %q (exit %d), want %q in that order", got, list.Code, want)
			}
			// ustar: POSIX magic in every header (GNU tar's --format test).
			if r := qemutest.Exec(t, "tar", "--format=ustar", "--list", "-f", out); r.Code != 0 {
				t.Errorf("not ustar: %s", r.Stderr)
			}
			x := t.TempDir()
			if r := qemutest.Exec(t, "tar", "-C", x, "-xf", out); r.Code != 0 {
				t.Fatalf("tar -x: %s", r.Stderr)
			}
			mf, _ := os.ReadFile(filepath.Join(x, want[1]))
			wantMF := "SHA256(" + want[0] + ")= " + sha256File(t, filepath.Join(x, want[0])) + "\n" +
				"SHA256(" + want[2] + ")= " + sha256File(t, filepath.Join(x, want[2])) + "\n"
			if string(mf) != wantMF {
				t.Errorf("manifest\n%s\nwant (sha256 of the extracted files)\n%s", mf, wantMF)
			}
			py := exec.Command(py, "-c", ovfCheck, filepath.Join(x, want[0]))
			pyOut, err := py.CombinedOutput()
			if err != nil {
				t.Fatalf("OVF check: %v: %s", err, pyOut)
			}
			var sum ovfSummary
			if err := json.Unmarshal(pyOut, &sum); err != nil {
				t.Fatalf("%v: %s", err, pyOut)
			}
			vmdk := filepath.Join(x, want[2])
			st, _ := os.Stat(vmdk)
			d := sum.Disks[sum.DiskOn]
			if sum.Name != tc.name || sum.CPUs != tc.cpus || sum.MemoryMiB != tc.memMiB || sum.Controller != tc.controller ||
				d.Capacity != 20<<20 || d.Href != want[2] || d.Size != st.Size() || !strings.HasSuffix(d.Format, "#streamOptimized") || sum.Type != "vmx-10" {
				t.Errorf("the OVF says %+v; want name %s, %d CPUs, %d MiB, controller %s, a 20 MiB disk of %d bytes", sum, tc.name, tc.cpus, tc.memMiB, tc.controller, st.Size())
			}
			// The second parser, govmomi's ovf package, reads the same.
			if gv := govmomiSummary(t, filepath.Join(x, want[0])); !cmp.Equal(gv, sum) {
				t.Errorf("govmomi reads the OVF differently from the lxml check:\n%s", cmp.Diff(sum, gv))
			}
			info := qemutest.Info(t, "vmdk", vmdk)
			if spec, _ := info["format-specific"].(map[string]any); spec == nil || spec["data"].(map[string]any)["create-type"] != "streamOptimized" {
				t.Errorf("qemu-img info: %v", info["format-specific"])
			}
			qemutest.RequireSame(t, "qcow2", src, "vmdk", vmdk)
			qemutest.RequireClean(t, "vmdk", vmdk)
			// vdisk reads its own OVA back as the disk.
			qemutest.RequireSame(t, "qcow2", src, "vmdk", vmdk)
			back := filepath.Join(t.TempDir(), "back.raw")
			if _, stderr, code := vdisk(t, "convert", "-O", "raw", out, back); code != 0 {
				t.Fatalf("reading the OVA back: %s", stderr)
			}
			qemutest.RequireSame(t, "qcow2", src, "raw", back)
		})
	}
}

// TestOVAToStdout: an OVA written to '-' (with its name given) is the
// same package; without a name it is refused.
func TestOVAToStdout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	qemutest.Img(t, "create", "-q", "-f", "raw", src, "3M")
	qemutest.IO(t, "raw", src, "write -P 0x77 1M 100k")
	if _, stderr, code := vdisk(t, "convert", "-O", "ova", src, "-"); code == 0 || !strings.Contains(stderr, "name=VM") {
		t.Errorf("an unnamed OVA to stdout: exit %d, %q", code, stderr)
	}
	stdout, stderr, code := vdisk(t, "convert", "-O", "ova", "-o", "name=piped", src, "-")
	if code != 0 {
		t.Fatal(stderr)
	}
	ova := filepath.Join(dir, "piped.ova")
	os.WriteFile(ova, []byte(stdout), 0o644)
	x := t.TempDir()
	if r := qemutest.Exec(t, "tar", "-C", x, "-xf", ova); r.Code != 0 {
		t.Fatalf("tar -x: %s", r.Stderr)
	}
	qemutest.RequireSame(t, "raw", src, "vmdk", filepath.Join(x, "piped-disk1.vmdk"))
	sum := govmomiSummary(t, filepath.Join(x, "piped.ovf"))
	st, _ := os.Stat(filepath.Join(x, "piped-disk1.vmdk"))
	if d := sum.Disks[sum.DiskOn]; sum.Name != "piped" || d.Capacity != 3<<20 || d.Href != "piped-disk1.vmdk" || d.Size != st.Size() || sum.CPUs != 1 || sum.MemoryMiB != 1024 {
		t.Errorf("govmomi reads the piped OVF as %+v", sum)
	}
}

// TestGCEOutput: convert -O gce, judged by gzip -t and GNU tar: the
// listing shows disk.raw of the disk's size, `tar --sparse -xzf` gives
// the source bytes and a file as sparse as the source; a 16 GiB disk
// (sizes past tar's 8 GiB octal fields) and a map past one extension
// block.
func TestGCEOutput(t *testing.T) {
	t.Parallel()
	qemutest.Tool(t, "gzip")
	dir := t.TempDir()
	small := filepath.Join(dir, "small.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", small, "40M")
	var cmds []string
	for i := range 30 { // 30 data runs: the header's 4 and an extension block's 21 overflow
		cmds = append(cmds, "write -P "+itoa(int64(i+1))+" "+itoa(int64(i)*1300)+"k 64k")
	}
	qemutest.IO(t, "qcow2", small, cmds...)
	big := filepath.Join(dir, "big.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", big, "16G")
	qemutest.IO(t, "qcow2", big, "write -P 0x5a 0 64k", "write -P 0xa5 9G 1M", "write -P 0x11 16383M 1M")
	for _, tc := range []struct {
		name, src  string
		size       int64
		dataMaxKiB int64
	}{
		{"30 runs", small, 40 << 20, 30*64 + 256},
		{"16 GiB", big, 16 << 30, 2*1024 + 64 + 256},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "image.tar.gz")
			if _, stderr, code := vdisk(t, "convert", "-O", "gce", tc.src, out); code != 0 {
				t.Fatalf("convert: %s", stderr)
			}
			if r := qemutest.Exec(t, "gzip", "-t", out); r.Code != 0 {
				t.Fatalf("gzip -t: %s", r.Stderr)
			}
			list := qemutest.Exec(t, "tar", "-tvzf", out)
			if f := strings.Fields(list.Stdout); list.Code != 0 || len(f) != 6 || f[5] != "disk.raw" || f[2] != itoa(tc.size) {
				t.Fatalf("tar -tvzf: %q (exit %d, %s); want one disk.raw of %d bytes", list.Stdout, list.Code, list.Stderr, tc.size)
			}
			x := t.TempDir()
			if r := qemutest.Exec(t, "tar", "-C", x, "--sparse", "-xzf", out); r.Code != 0 {
				t.Fatalf("tar --sparse -xzf: %s", r.Stderr)
			}
			raw := filepath.Join(x, "disk.raw")
			qemutest.RequireSame(t, "qcow2", tc.src, "raw", raw)
			var st syscall.Stat_t
			if err := syscall.Stat(raw, &st); err != nil {
				t.Fatal(err)
			}
			if st.Size != tc.size || st.Blocks*512/1024 > tc.dataMaxKiB {
				t.Errorf("extracted disk.raw: %d bytes, %d KiB allocated; want %d bytes and at most %d KiB (sparse)", st.Size, st.Blocks/2, tc.size, tc.dataMaxKiB)
			}
			// vdisk reads its own package back (the archive reader).
			back := filepath.Join(t.TempDir(), "back.qcow2")
			if _, stderr, code := vdisk(t, "convert", "-O", "qcow2", out, back); code != 0 {
				t.Fatalf("reading back: %s", stderr)
			}
			qemutest.RequireSame(t, "qcow2", tc.src, "qcow2", back)
		})
	}
}

// TestPackageOutputRefusals: what a package output cannot be is refused
// before anything is left behind.
func TestPackageOutputRefusals(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	qemutest.Img(t, "create", "-q", "-f", "raw", src, "1M")
	for _, tc := range []struct {
		args  []string
		words string
	}{
		{[]string{"convert", "-O", "ova", "-o", "cpus=0", src, filepath.Join(dir, "a.ova")}, "cpus=0"},
		{[]string{"convert", "-O", "ova", "-o", "memory=1000k", src, filepath.Join(dir, "a.ova")}, "whole number of MiB"},
		{[]string{"convert", "-O", "ova", "-o", "name=../x", src, filepath.Join(dir, "a.ova")}, "name="},
		{[]string{"convert", "-O", "ova", "-o", "adapter_type=sata", src, filepath.Join(dir, "a.ova")}, "adapter_type"},
		{[]string{"convert", "-O", "gce", src, "-"}, "stream"},
	} {
		_, stderr, code := vdisk(t, tc.args...)
		if code == 0 || !strings.Contains(stderr, tc.words) {
			t.Errorf("%v: exit %d, %q; want a refusal naming %q", tc.args, code, stderr, tc.words)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("files left behind: %v", ents)
	}
}
