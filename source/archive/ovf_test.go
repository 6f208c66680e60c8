package archive_test

import (
	"archive/tar"
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/source/archive"
)

// ovfText is a minimal descriptor naming files by href.
func ovfText(hrefs ...string) string {
	var refs, disks strings.Builder
	for i, h := range hrefs {
		fmt.Fprintf(&refs, `<File ovf:id="file%d" ovf:href="%s" ovf:size="5"/>`, i+1, h)
		fmt.Fprintf(&disks, `<Disk ovf:diskId="vmdisk%d" ovf:fileRef="file%d" ovf:capacity="%d" ovf:capacityAllocationUnits="byte * 2^20" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>`, i+1, i+1, i+1)
	}
	return `<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References>` + refs.String() + `</References>
  <DiskSection><Info>Virtual disks</Info>` + disks.String() + `</DiskSection>
  <VirtualSystem ovf:id="vm"><Info>A VM</Info></VirtualSystem>
</Envelope>`
}

// tarOf makes a tar of (name, content) pairs with archive/tar.
func tarOf(t testing.TB, pairs ...string) []byte {
	var buf bytes.Buffer
	w := tar.NewWriter(&buf)
	for i := 0; i+1 < len(pairs); i += 2 {
		if err := w.WriteHeader(&tar.Header{Name: pairs[i], Size: int64(len(pairs[i+1])), Mode: 0o644}); err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(pairs[i+1]))
	}
	w.Close()
	return buf.Bytes()
}

func readArchive(t *testing.T, data []byte) (*archive.Archive, error) {
	return archive.Read(bytes.NewReader(data), int64(len(data)), "x.ova", archive.Limits{})
}

func TestOVADisksInOrder(t *testing.T) {
	data := tarOf(t, "vm.ovf", ovfText("b.vmdk", "a.vmdk"), "vm.mf", "x", "a.vmdk", "AAAAA", "b.vmdk", "BBBBB")
	a, err := readArchive(t, data)
	if err != nil {
		t.Fatal(err)
	}
	if a.Kind != archive.KindOVA || a.Descriptor != "vm.ovf" {
		t.Fatalf("kind %q descriptor %q", a.Kind, a.Descriptor)
	}
	want := []archive.Disk{
		{Number: 1, Member: "b.vmdk", ID: "vmdisk1", Format: "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized", CapacityBytes: 1 << 20},
		{Number: 2, Member: "a.vmdk", ID: "vmdisk2", Format: "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized", CapacityBytes: 2 << 20},
	}
	if diff := cmp.Diff(want, a.Disks); diff != "" {
		t.Errorf("disks (-want +got):\n%s", diff)
	}
	for disk, name := range map[int]string{0: "b.vmdk", 1: "b.vmdk", 2: "a.vmdk"} {
		m, err := a.Choose(disk, "")
		if err != nil || m.Name != name {
			t.Errorf("disk %d: %v %v, want %s", disk, m, err, name)
		}
	}
	if _, err := a.Choose(3, ""); err == nil || !strings.Contains(err.Error(), "no disk 3") {
		t.Errorf("disk 3: %v", err)
	}
}

// TestVagrantBoxes: a virtualbox box (box.ovf after metadata.json, the
// order of `tar czf`) and a libvirt box (box.img).
func TestVagrantBoxes(t *testing.T) {
	vb := tarOf(t, "./metadata.json", `{"provider":"virtualbox"}`, "./Vagrantfile", "", "./box-disk001.vmdk", "VMDK!", "./box.ovf", ovfText("box-disk001.vmdk"))
	a, err := readArchive(t, vb)
	if err != nil {
		t.Fatal(err)
	}
	if a.Kind != archive.KindBox || a.Provider != "virtualbox" || len(a.Disks) != 1 || a.Disks[0].Member != "box-disk001.vmdk" {
		t.Fatalf("virtualbox box: %+v", a)
	}
	lv := tarOf(t, "metadata.json", `{"provider":"libvirt","format":"qcow2","virtual_size":2}`, "box.img", "QFI", "Vagrantfile", "")
	a, err = readArchive(t, lv)
	if err != nil {
		t.Fatal(err)
	}
	m, err := a.Choose(0, "")
	if a.Kind != archive.KindBox || a.Provider != "libvirt" || err != nil || m.Name != "box.img" {
		t.Fatalf("libvirt box: %+v %v", a, err)
	}
}

// TestOVFHostile: hrefs that leave the archive, missing members, deep or
// huge XML, entity bombs: refused with what is wrong.
func TestOVFHostile(t *testing.T) {
	laughs := `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">` +
		`<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">]><Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"><References>&lol2;</References></Envelope>`
	deep := `<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1">` + strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100) + `</Envelope>`
	wide := `<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1">` + strings.Repeat("<a/>", archive.MaxOVFElements+1) + `</Envelope>`
	for _, tc := range []struct {
		name, ovf string
		members   []string
		kind      error
		words     string
	}{
		{"href climbs out", ovfText("../../etc/passwd"), nil, formats.ErrReferenceDenied, "leaves the package"},
		{"href absolute", ovfText("/etc/passwd"), nil, formats.ErrReferenceDenied, "absolute"},
		{"href URL", ovfText("http://example.com/disk.vmdk"), nil, formats.ErrReferenceDenied, "URL"},
		{"href file URL", ovfText("file:///etc/passwd"), nil, formats.ErrReferenceDenied, "URL"},
		{"href not in archive", ovfText("elsewhere.vmdk"), nil, formats.ErrReferenceDenied, "not a member"},
		{"fileRef unknown", strings.Replace(ovfText("a.vmdk"), `ovf:fileRef="file1"`, `ovf:fileRef="nope"`, 1), []string{"a.vmdk", "x"}, formats.ErrCorrupt, "References does not list"},
		{"compressed file", strings.Replace(ovfText("a.vmdk"), `ovf:size="5"`, `ovf:compression="gzip"`, 1), []string{"a.vmdk", "x"}, formats.ErrUnsupported, "compression"},
		{"chunked file", strings.Replace(ovfText("a.vmdk"), `ovf:size="5"`, `ovf:chunkSize="100"`, 1), []string{"a.vmdk", "x"}, formats.ErrUnsupported, "chunkSize"},
		{"bad size", strings.Replace(ovfText("a.vmdk"), `ovf:size="5"`, `ovf:size="-5"`, 1), []string{"a.vmdk", "x"}, formats.ErrCorrupt, "not a size"},
		{"billion laughs", laughs, nil, formats.ErrCorrupt, "entity"},
		{"deep", deep, nil, formats.ErrLimit, "nested deeper"},
		{"wide", wide, nil, formats.ErrLimit, "elements"},
		{"not xml", "this is not XML <", nil, formats.ErrCorrupt, "OVF descriptor"},
		{"not an envelope", `<Other/>`, nil, formats.ErrCorrupt, "not an OVF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pairs := append([]string{"vm.ovf", tc.ovf}, tc.members...)
			_, err := readArchive(t, tarOf(t, pairs...))
			if err == nil {
				t.Fatal("accepted")
			}
			errIs(t, err, tc.kind, tc.words)
			if !strings.Contains(err.Error(), "x.ova/vm.ovf") {
				t.Errorf("error does not name the descriptor: %v", err)
			}
		})
	}
	big := strings.Repeat(" ", archive.MaxOVFBytes+1)
	if _, err := archive.ParseOVF([]byte(big), "big.ovf"); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("oversized descriptor: %v", err)
	}
}

func TestCapacityUnits(t *testing.T) {
	for _, tc := range []struct {
		capacity, units string
		want            int64
	}{
		{"10", "", 10}, {"10", "byte", 10}, {"4", "byte * 2^30", 4 << 30}, {"3", "byte * 1024", 3072},
		{"${disk.size}", "byte", -1}, {"1", "byte * 2^63", -1}, {"1", "MegaBytes", -1}, {"9223372036854775807", "byte * 2^10", -1},
	} {
		env, err := archive.ParseOVF([]byte(`<Envelope xmlns="`+archive.OVFNamespace1+`" xmlns:ovf="`+archive.OVFNamespace1+`"><DiskSection><Disk ovf:diskId="d" ovf:capacity="`+tc.capacity+`" ovf:capacityAllocationUnits="`+tc.units+`"/></DiskSection></Envelope>`), "c.ovf")
		if err != nil {
			t.Fatal(err)
		}
		if got := env.Disks[0].CapacityBytes; got != tc.want {
			t.Errorf("%s %q: %d, want %d", tc.capacity, tc.units, got, tc.want)
		}
	}
}
