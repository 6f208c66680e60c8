package partition_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
	"github.com/vdiskio/vdisk/partition"
	_ "github.com/vdiskio/vdisk/qcow2"
	_ "github.com/vdiskio/vdisk/raw"
	_ "github.com/vdiskio/vdisk/vhdx"
	_ "github.com/vdiskio/vdisk/vmdk"
)

const mib = 1 << 20

// tool runs an external partitioning tool (skipped, or failed under
// VDISK_REQUIRE_QEMU=1, when it is missing).
func tool(t *testing.T, name string, stdin string, args ...string) string {
	t.Helper()
	path := qemutest.Tool(t, name)
	cmd := exec.Command(path, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func blank(t *testing.T, size int64) string {
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := os.Truncate(createFile(t, p), size); err != nil {
		t.Fatal(err)
	}
	return p
}

func createFile(t *testing.T, p string) string {
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

// mbrDisk: two primaries (one bootable), an extended partition with two
// logical ones, and a fourth primary, written by sfdisk.
func mbrDisk(t *testing.T) string {
	p := blank(t, 64*mib)
	tool(t, "sfdisk", "label: dos\n1M,8M,83,*\n,8M,c\n,30M,5\n,4M,83\n,4M,82\n,,7\n", "-q", p)
	return p
}

// gptDisk: three named partitions written by sgdisk.
func gptDisk(t *testing.T) string {
	p := blank(t, 64*mib)
	tool(t, "sgdisk", "", "-n", "1:1M:+8M", "-t", "1:ef00", "-c", "1:EFI system",
		"-n", "2:0:+16M", "-t", "2:8300", "-c", "2:root", "-n", "3:0:0", "-t", "3:0700", "-c", "3:data", p)
	return p
}

// sfdiskView is what sfdisk --json says of a disk, in vdisk's terms.
type sfdiskView struct {
	Label, ID  string
	Partitions []sfPart
}

type sfPart struct {
	Number      int
	Start, Size int64 // sectors
	Type        string
	UUID, Name  string
	Bootable    bool
}

func sfdisk(t *testing.T, path string) sfdiskView {
	var out struct {
		PT struct {
			Label, ID  string
			Partitions []struct {
				Node        string
				Start, Size int64
				Type        string
				UUID, Name  string
				Bootable    bool
			}
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal([]byte(tool(t, "sfdisk", "", "--json", path)), &out); err != nil {
		t.Fatal(err)
	}
	v := sfdiskView{Label: out.PT.Label, ID: strings.ToUpper(out.PT.ID)}
	for _, p := range out.PT.Partitions {
		var n int
		fmt.Sscanf(p.Node[strings.LastIndex(p.Node, "img")+3:], "%d", &n)
		v.Partitions = append(v.Partitions, sfPart{Number: n, Start: p.Start, Size: p.Size,
			Type: strings.ToUpper(p.Type), UUID: p.UUID, Name: p.Name, Bootable: p.Bootable})
	}
	return v
}

// view turns a vdisk table into sfdisk's terms.
func view(tab *partition.Table) sfdiskView {
	v := sfdiskView{Label: map[partition.Scheme]string{partition.SchemeMBR: "dos", partition.SchemeGPT: "gpt"}[tab.Scheme]}
	if tab.Scheme == partition.SchemeGPT {
		v.ID = tab.DiskGUID
	} else {
		v.ID = fmt.Sprintf("0X%08X", tab.DiskID)
	}
	ss := int64(tab.SectorSize)
	for _, p := range tab.Partitions {
		typ := p.TypeGUID
		if tab.Scheme == partition.SchemeMBR {
			typ = fmt.Sprintf("%X", p.TypeByte)
		}
		v.Partitions = append(v.Partitions, sfPart{Number: p.Number, Start: p.Start / ss, Size: p.Size / ss,
			Type: typ, UUID: p.GUID, Name: p.Name, Bootable: p.Bootable})
	}
	return v
}

func openImage(t *testing.T, path string) formats.Image {
	img, err := formats.Open(context.Background(), path, formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { img.Close() })
	return img
}

func readTable(t *testing.T, path string) *partition.Table {
	img := openImage(t, path)
	tab, err := partition.Read(img, img.Size())
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func TestTablesMatchSfdisk(t *testing.T) {
	for name, make := range map[string]func(*testing.T) string{"mbr": mbrDisk, "gpt": gptDisk} {
		t.Run(name, func(t *testing.T) {
			disk := make(t)
			want := sfdisk(t, disk)
			tab := readTable(t, disk)
			if diff := cmp.Diff(want, view(tab)); diff != "" {
				t.Errorf("table differs from sfdisk's (-sfdisk +vdisk):\n%s", diff)
			}
			if len(tab.Warnings) != 0 {
				t.Errorf("warnings on a clean table: %q", tab.Warnings)
			}
			// The same disk inside qcow2, vmdk and vhdx reads the same table.
			for _, f := range []string{"qcow2", "vmdk", "vhdx"} {
				wrapped := filepath.Join(t.TempDir(), "disk."+f)
				qemutest.Img(t, "convert", "-f", "raw", "-O", f, disk, wrapped)
				if diff := cmp.Diff(want, view(readTable(t, wrapped))); diff != "" {
					t.Errorf("%s: table differs (-sfdisk +vdisk):\n%s", f, diff)
				}
			}
		})
	}
}

func TestTypeNames(t *testing.T) {
	tab := readTable(t, gptDisk(t))
	var names []string
	for _, p := range tab.Partitions {
		names = append(names, p.Type)
	}
	if diff := cmp.Diff([]string{"EFI System", "Linux filesystem", "Microsoft basic data"}, names); diff != "" {
		t.Error(diff)
	}
	tab = readTable(t, mbrDisk(t))
	if got := tab.Partitions[len(tab.Partitions)-1]; got.Type != "HPFS/NTFS/exFAT" || !got.Logical || got.Number != 6 {
		t.Errorf("last logical partition: %+v", got)
	}
}

// corruptAt flips a byte of a file.
func corruptAt(t *testing.T, path string, off int64) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	f.ReadAt(b, off)
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestGPTBackupUsed(t *testing.T) {
	for name, off := range map[string]int64{"header": 512 + 60, "entries": 1024 + 200} {
		t.Run(name, func(t *testing.T) {
			disk := gptDisk(t)
			want := sfdisk(t, disk)
			corruptAt(t, disk, off)
			tab := readTable(t, disk)
			if diff := cmp.Diff(want, view(tab)); diff != "" {
				t.Errorf("table from the backup differs (-sfdisk before damage +vdisk):\n%s", diff)
			}
			if len(tab.Warnings) != 1 || !strings.Contains(tab.Warnings[0], "backup") {
				t.Errorf("warnings %q, want one naming the backup", tab.Warnings)
			}
		})
	}
	// Both copies damaged: an error, not a guess.
	disk := gptDisk(t)
	corruptAt(t, disk, 512+60)
	fi, _ := os.Stat(disk)
	corruptAt(t, disk, fi.Size()-512+60)
	img := openImage(t, disk)
	if _, err := partition.Read(img, img.Size()); !errors.Is(err, formats.ErrCorrupt) {
		t.Errorf("both headers damaged: %v", err)
	}
}

func TestHybridMBR(t *testing.T) {
	disk := gptDisk(t)
	tool(t, "sgdisk", "", "-h", "1:EE", disk)
	tab := readTable(t, disk)
	if tab.Scheme != partition.SchemeGPT || !tab.Hybrid || len(tab.Partitions) != 3 {
		t.Errorf("hybrid disk: scheme %s hybrid %v, %d partitions", tab.Scheme, tab.Hybrid, len(tab.Partitions))
	}
}

func TestNoTable(t *testing.T) {
	disk := blank(t, 16*mib)
	tool(t, "mkfs.ext4", "", "-q", "-F", disk)
	if tab := readTable(t, disk); tab.Scheme != partition.SchemeNone || len(tab.Partitions) != 0 {
		t.Errorf("bare ext4: %+v", tab)
	}
	fat := blank(t, 16*mib)
	tool(t, "mkfs.fat", "", fat)
	if tab := readTable(t, fat); tab.Scheme != partition.SchemeNone {
		t.Errorf("bare FAT: %+v", tab)
	}
}

// A partition read as an image holds the disk's bytes at its offset, and
// its extents are the disk's, shifted.
func TestPartitionImage(t *testing.T) {
	disk := gptDisk(t)
	qemutest.IO(t, "raw", disk, "write -P 0x5c 18M 64k") // inside partition 2 (starts at 9 MiB)
	wrapped := filepath.Join(t.TempDir(), "disk.qcow2")
	qemutest.Img(t, "convert", "-f", "raw", "-O", "qcow2", disk, wrapped)
	img := openImage(t, wrapped)
	part, p, err := partition.Open(img, 2, false)
	if err != nil {
		t.Fatal(err)
	}
	if p.Start != 9*mib || part.Size() != 16*mib {
		t.Fatalf("partition 2 at %d, %d bytes", p.Start, part.Size())
	}
	buf := make([]byte, 4)
	if _, err := part.ReadAt(buf, 9*mib); err != nil || buf[0] != 0x5c || buf[3] != 0x5c {
		t.Fatalf("read %x, %v", buf, err)
	}
	exts, err := part.Extents(0, part.Size())
	if err != nil {
		t.Fatal(err)
	}
	var data int64
	for _, e := range exts {
		if e.Kind == formats.Data {
			data += e.Length
			if e.Offset > 9*mib || e.End() < 9*mib+64<<10 {
				t.Errorf("data extent %+v does not cover the write", e)
			}
		}
	}
	if data != 64<<10 {
		t.Errorf("%d data bytes in partition 2, want the 64 KiB written", data)
	}
	if _, _, err := partition.Open(img, 9, false); !errors.Is(err, partition.ErrNotFound) {
		t.Errorf("partition 9: %v", err)
	}
}

// Hostile tables: each ends in a clean error.
func TestHostile(t *testing.T) {
	le32 := binary.LittleEndian.PutUint32
	mbrWith := func(entries ...[4]uint32) []byte { // status|type, first, count
		d := make([]byte, 64*mib)
		for i, e := range entries {
			o := 446 + 16*i
			d[o], d[o+4] = byte(e[0]>>8), byte(e[0])
			le32(d[o+8:], e[1])
			le32(d[o+12:], e[2])
		}
		d[510], d[511] = 0x55, 0xAA
		return d
	}
	ebr := func(d []byte, at int64, first, count, next uint32) {
		o := at*512 + 446
		d[o+4] = 0x83
		le32(d[o+8:], first)
		le32(d[o+12:], count)
		if next != 0 {
			d[o+16+4] = 0x05
			le32(d[o+16+8:], next)
			le32(d[o+16+12:], 16)
		}
		d[at*512+510], d[at*512+511] = 0x55, 0xAA
	}
	cases := map[string][]byte{}
	cases["entry past the disk"] = mbrWith([4]uint32{0x83, 2048, 1 << 30})
	loop := mbrWith([4]uint32{0x05, 2048, 100000})
	ebr(loop, 2048, 1, 8, 100)
	ebr(loop, 2148, 1, 8, 100) // links to itself
	cases["EBR loop"] = loop
	long := mbrWith([4]uint32{0x05, 2048, 120000})
	for i := int64(0); i < 200; i++ {
		ebr(long, 2048+i*100, 1, 8, uint32((i+1)*100))
	}
	cases["long EBR chain"] = long
	gpt := mbrWith([4]uint32{0xEE, 1, 131071})
	copy(gpt[512:], "EFI PART")
	cases["protective MBR, broken GPT"] = gpt
	for name, d := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := partition.Read(bytesReader(d), int64(len(d)))
			if !errors.Is(err, formats.ErrCorrupt) {
				t.Errorf("err = %v, want ErrCorrupt", err)
			}
		})
	}
}

type bytesReader []byte

func (b bytesReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(b)) {
		return 0, fmt.Errorf("EOF")
	}
	return copy(p, b[off:]), nil
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }
