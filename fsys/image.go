package fsys

import (
	"fmt"
	"strings"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/partition"
)

// Part describes one partition (or the whole disk, Number 0, when it has
// no table) and the file system found in it.
type Part struct {
	partition.Partition
	FileSystem string // Detect's name, "" when none was recognised
	Label      string // the file system's label, when it could be opened
}

// Describe reads img's partition table and detects the file system of
// each partition; a disk without a table is described as one Part with
// Number 0 spanning the disk.
func Describe(img formats.Image) (*partition.Table, []Part, error) {
	t, err := partition.Read(img, img.Size())
	if err != nil {
		return nil, nil, err
	}
	if t.Scheme == partition.SchemeNone || Detect(img, img.Size()) != "" {
		t = &partition.Table{Scheme: partition.SchemeNone, SectorSize: 512}
		whole := partition.Partition{Number: 0, Start: 0, Size: img.Size()}
		return t, []Part{describe(img, whole)}, nil
	}
	parts := make([]Part, 0, len(t.Partitions))
	for _, p := range t.Partitions {
		parts = append(parts, describe(img, p))
	}
	return t, parts, nil
}

func describe(img formats.Image, p partition.Partition) Part {
	out := Part{Partition: p}
	if !p.Logical && (p.TypeByte == 0x05 || p.TypeByte == 0x0f || p.TypeByte == 0x85) {
		return out // an extended partition holds EBRs, not a file system
	}
	view := partition.View(img, p, false)
	out.FileSystem = Detect(view, view.Size())
	if v, err := Open(view, view.Size()); err == nil {
		out.Label = v.Label
	}
	return out
}

// OpenImage opens the file system on img: in partition n when n > 0; when
// n is 0, the file system at offset 0 of a disk without a partition table,
// or the only partition that holds a file system vdisk reads.
func OpenImage(img formats.Image, n int) (*Volume, error) {
	if n > 0 {
		view, _, err := partition.Open(img, n, false)
		if err != nil {
			return nil, err
		}
		return Open(view, view.Size())
	}
	if Detect(img, img.Size()) != "" { // a file system at offset 0 (no table)
		return Open(img, img.Size())
	}
	t, parts, err := Describe(img)
	if err != nil {
		return nil, err
	}
	if t.Scheme == partition.SchemeNone {
		return nil, ErrNoFileSystem
	}
	var readable []Part
	var list []string
	for _, p := range parts {
		list = append(list, fmt.Sprintf("%d (%s)", p.Number, orNone(p.FileSystem)))
		switch p.FileSystem {
		case "ext2", "ext3", "ext4", "vfat", "ntfs", "iso9660":
			readable = append(readable, p)
		}
	}
	if len(readable) == 1 {
		view := partition.View(img, readable[0].Partition, false)
		return Open(view, view.Size())
	}
	return nil, fmt.Errorf("the disk has %s partitions %s: name one as IMAGE:N",
		t.Scheme, strings.Join(list, ", "))
}

func orNone(s string) string {
	if s == "" {
		return "no known file system"
	}
	return s
}
