package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// archiveFixtures makes two small disks with qemu-img (a.raw, b.raw) and,
// with GNU tar, the archives they arrive in: an OVA of two VMDKs (the OVF
// lists b first), a libvirt Vagrant box (tar.gz of box.img, a qcow2), a
// GCE tar.gz of a sparse disk.raw (oldgnu and PAX 1.0), a plain tar of
// several files.
func archiveFixtures(t *testing.T) (dir string, disks map[string]string) {
	t.Helper()
	qemutest.Tool(t, "tar")
	dir = t.TempDir()
	a, b := filepath.Join(dir, "a.raw"), filepath.Join(dir, "b.raw")
	qemutest.Img(t, "create", "-q", "-f", "raw", a, "8M")
	qemutest.IO(t, "raw", a, "write -P 0x5a 1M 1M", "write -P 0x11 7M 4k")
	qemutest.Img(t, "create", "-q", "-f", "raw", b, "6M")
	qemutest.IO(t, "raw", b, "write -P 0xa5 0 64k", "write -P 0x22 5M 512k")
	qemutest.Img(t, "convert", "-O", "vmdk", "-o", "subformat=streamOptimized", a, filepath.Join(dir, "a.vmdk"))
	qemutest.Img(t, "convert", "-O", "vmdk", "-o", "subformat=streamOptimized", b, filepath.Join(dir, "b.vmdk"))
	qemutest.Img(t, "convert", "-O", "qcow2", a, filepath.Join(dir, "box.img"))
	ovf := `<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References><File ovf:id="fa" ovf:href="a.vmdk"/><File ovf:id="fb" ovf:href="b.vmdk"/></References>
  <DiskSection><Info>disks</Info>
    <Disk ovf:diskId="vmdisk1" ovf:fileRef="fb" ovf:capacity="6" ovf:capacityAllocationUnits="byte * 2^20"/>
    <Disk ovf:diskId="vmdisk2" ovf:fileRef="fa" ovf:capacity="8" ovf:capacityAllocationUnits="byte * 2^20"/>
  </DiskSection>
  <VirtualSystem ovf:id="vm"><Info>vm</Info></VirtualSystem>
</Envelope>`
	os.WriteFile(filepath.Join(dir, "vm.ovf"), []byte(ovf), 0o644)
	os.WriteFile(filepath.Join(dir, "metadata.json"), []byte(`{"provider":"libvirt","format":"qcow2"}`), 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("notes"), 0o644)
	gce := filepath.Join(dir, "gce")
	os.Mkdir(gce, 0o755)
	qemutest.Img(t, "convert", "-O", "raw", b, filepath.Join(gce, "disk.raw"))
	in := func(name string) string { return filepath.Join(dir, name) }
	for _, args := range [][]string{
		{"-cf", in("vm.ova"), "vm.ovf", "a.vmdk", "b.vmdk"},
		{"-czf", in("lv.box"), "./metadata.json", "./box.img"},
		{"-C", "gce", "--format=oldgnu", "-Sczf", in("gce-oldgnu.tar.gz"), "disk.raw"},
		{"-C", "gce", "--format=posix", "--sparse-version=1.0", "-Scf", in("gce-pax.tar"), "disk.raw"},
		{"-cf", in("plain.tar"), "notes.txt", "a.vmdk", "box.img"},
	} {
		r := qemutest.Exec(t, "tar", append([]string{"-C", dir}, args...)...)
		if r.Code != 0 {
			t.Fatalf("tar %v: %s", args, r.Stderr)
		}
	}
	return dir, map[string]string{"a": a, "b": b}
}

// TestArchiveSources: vdisk reads the disks inside archives GNU tar made:
// convert gives the disk qemu-img made (qemu-img compare), info names the
// archive and lists its disks.
func TestArchiveSources(t *testing.T) {
	t.Parallel()
	dir, disks := archiveFixtures(t)
	for _, tc := range []struct {
		name, src string
		flags     []string
		want      string // the disk it holds
		infoWords []string
	}{
		{"ova first disk", "vm.ova", nil, "b", []string{"archive: ova, member b.vmdk", "1: b.vmdk (OVF disk vmdisk1", "2: a.vmdk"}},
		{"ova disk 2", "vm.ova", []string{"--disk", "2"}, "a", []string{"archive: ova, member a.vmdk"}},
		{"ova by member", "vm.ova", []string{"--member", "a.vmdk"}, "a", []string{"member a.vmdk"}},
		{"libvirt box", "lv.box", nil, "a", []string{"file format: qcow2", "source compression: gzip", "archive: vagrant-box, member box.img (provider libvirt)"}},
		{"gce oldgnu", "gce-oldgnu.tar.gz", nil, "b", []string{"source compression: gzip", "archive: gce, member disk.raw (GNU sparse, oldgnu)"}},
		{"gce pax 1.0", "gce-pax.tar", nil, "b", []string{"archive: gce, member disk.raw (GNU sparse, pax-1.0)"}},
		{"plain tar member", "plain.tar", []string{"--member", "box.img"}, "a", []string{"archive: tar, member box.img"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := filepath.Join(dir, tc.src)
			out, stderr, code := vdisk(t, append(tc.flags, "info", src)...)
			if code != 0 {
				t.Fatalf("info: %s", stderr)
			}
			for _, w := range tc.infoWords {
				if !strings.Contains(out, w) {
					t.Errorf("info lacks %q:\n%s", w, out)
				}
			}
			dst := filepath.Join(t.TempDir(), "out.qcow2")
			if _, stderr, code := vdisk(t, append(tc.flags, "convert", "-O", "qcow2", src, dst)...); code != 0 {
				t.Fatalf("convert: %s", stderr)
			}
			qemutest.RequireSame(t, "raw", disks[tc.want], "qcow2", dst)
			qemutest.RequireClean(t, "qcow2", dst)
		})
	}
	t.Run("sparse stays sparse", func(t *testing.T) {
		// The holes GNU tar recorded become holes of a raw output.
		dst := filepath.Join(t.TempDir(), "out.raw")
		if _, stderr, code := vdisk(t, "convert", "-O", "raw", filepath.Join(dir, "gce-pax.tar"), dst); code != 0 {
			t.Fatalf("convert: %s", stderr)
		}
		qemutest.RequireSame(t, "raw", disks["b"], "raw", dst)
		mapOut, _, _ := vdisk(t, "map", "--output=json", dst)
		var ranges []struct {
			Length int64 `json:"length"`
			Data   bool  `json:"data"`
		}
		if err := json.Unmarshal([]byte(mapOut), &ranges); err != nil {
			t.Fatal(err)
		}
		var data int64
		for _, r := range ranges {
			if r.Data {
				data += r.Length
			}
		}
		if data > 1<<20 {
			t.Errorf("%d data bytes in the raw output; the disk holds 576 KiB", data)
		}
	})
	t.Run("json", func(t *testing.T) {
		out, stderr, code := vdisk(t, "info", "--output=json", filepath.Join(dir, "vm.ova"))
		if code != 0 {
			t.Fatal(stderr)
		}
		var info struct {
			Format  string `json:"format"`
			Archive struct {
				Kind  string `json:"kind"`
				Disks []struct {
					Number   int    `json:"number"`
					Member   string `json:"member"`
					Capacity int64  `json:"capacity"`
				} `json:"disks"`
			} `json:"vdisk-archive"`
		}
		if err := json.Unmarshal([]byte(out), &info); err != nil {
			t.Fatal(err)
		}
		if info.Format != "vmdk" || info.Archive.Kind != "ova" || len(info.Archive.Disks) != 2 || info.Archive.Disks[1].Member != "a.vmdk" || info.Archive.Disks[1].Capacity != 8<<20 {
			t.Errorf("info json: %+v", info)
		}
	})
}

// TestArchiveSourceErrors: what cannot be read is refused with a clear
// line.
func TestArchiveSourceErrors(t *testing.T) {
	t.Parallel()
	dir, disks := archiveFixtures(t)
	for _, tc := range []struct {
		name  string
		args  []string
		words string
	}{
		{"several files", []string{"info", filepath.Join(dir, "plain.tar")}, "name one with --member"},
		{"no such disk", []string{"--disk", "3", "info", filepath.Join(dir, "vm.ova")}, "no disk 3"},
		{"no such member", []string{"--member", "x", "info", filepath.Join(dir, "vm.ova")}, `no member "x"`},
		{"not an archive", []string{"--disk", "1", "info", disks["a"]}, "not one"},
		{"both", []string{"--disk", "1", "--member", "a.vmdk", "info", filepath.Join(dir, "vm.ova")}, "not both"},
		{"write into a member", []string{"resize", filepath.Join(dir, "vm.ova"), "+1M"}, "read-only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := vdisk(t, tc.args...)
			if code == 0 || !strings.Contains(stderr, tc.words) {
				t.Fatalf("exit %d, stderr %q; want a failure saying %q", code, stderr, tc.words)
			}
		})
	}
}
