package main

import (
	"fmt"
	"io"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/fsys"
	"github.com/vdiskio/vdisk/partition"
)

// diskContents is the partition table and file systems info shows.
type diskContents struct {
	table *partition.Table
	parts []fsys.Part
}

func hasBacking(img formats.Image) bool {
	b, ok := img.(formats.Backer)
	return ok && b.BackingName() != ""
}

// describeContents reads img's partitions and file systems; nil when there
// is nothing to show (no table and no file system, or unreadable data such
// as an encrypted image opened without its key).
func describeContents(img formats.Image) *diskContents {
	t, parts, err := fsys.Describe(img)
	if err != nil {
		return nil
	}
	if t.Scheme == partition.SchemeNone && (len(parts) == 0 || parts[0].FileSystem == "") {
		return nil
	}
	return &diskContents{table: t, parts: parts}
}

func (d *diskContents) print(w io.Writer) {
	if d.table.Scheme == partition.SchemeNone {
		p := d.parts[0]
		fmt.Fprintf(w, "File system: %s%s\n", p.FileSystem, labelText(p.Label))
		return
	}
	extra := ""
	if d.table.Hybrid {
		extra = ", hybrid MBR"
	}
	fmt.Fprintf(w, "Partition table: %s (%d-byte sectors%s)\n", d.table.Scheme, d.table.SectorSize, extra)
	for _, warn := range d.table.Warnings {
		fmt.Fprintf(w, "    warning: %s\n", warn)
	}
	fmt.Fprintf(w, "    %-3s %14s %14s  %-24s %-16s %s\n", "#", "start", "size", "type", "name", "file system")
	for _, p := range d.parts {
		fs := p.FileSystem
		if fs == "" {
			fs = "-"
		}
		fmt.Fprintf(w, "    %-3d %14d %14d  %-24s %-16s %s%s\n", p.Number, p.Start, p.Size, p.Type, p.Name, fs, labelText(p.Label))
	}
}

func labelText(l string) string {
	if l == "" {
		return ""
	}
	return fmt.Sprintf(" (label %q)", l)
}

// object is the JSON form, under "vdisk-partitions".
func (d *diskContents) object() formats.Object {
	var list []any
	for _, p := range d.parts {
		o := formats.Object{{Key: "number", Value: int64(p.Number)}, {Key: "start", Value: p.Start},
			{Key: "size", Value: p.Size}, {Key: "type", Value: p.Type}}
		if p.TypeGUID != "" {
			o = append(o, formats.Field{Key: "type-guid", Value: p.TypeGUID}, formats.Field{Key: "guid", Value: p.GUID})
		}
		if p.Name != "" {
			o = append(o, formats.Field{Key: "name", Value: p.Name})
		}
		if p.FileSystem != "" {
			o = append(o, formats.Field{Key: "file-system", Value: p.FileSystem})
		}
		if p.Label != "" {
			o = append(o, formats.Field{Key: "label", Value: p.Label})
		}
		list = append(list, o)
	}
	return formats.Object{{Key: "table", Value: string(d.table.Scheme)}, {Key: "sector-size", Value: int64(d.table.SectorSize)},
		{Key: "partitions", Value: list}}
}
