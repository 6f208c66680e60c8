package fsys

import (
	"fmt"
	"io"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/partition"
)

// Contents is what a disk holds, as `vdisk info` shows it after qemu's
// fields: the partition table and the file system of each partition (or of
// the whole disk). Its json tags give the keys of info's "vdisk-partitions"
// object (package imageinfo marshals it); WriteHuman prints the text.
type Contents struct {
	Table      string         `json:"table"`       // "mbr", "gpt" or "none"
	SectorSize int64          `json:"sector-size"` // bytes
	Partitions []PartContents `json:"partitions"`
	Hybrid     bool           `json:"-"` // a GPT disk whose MBR also lists partitions
	Warnings   []string       `json:"-"` // what the table reader found odd
}

// PartContents is one partition of Contents.
type PartContents struct {
	Number     int64  `json:"number"` // 0: the whole disk, which has no table
	Start      int64  `json:"start"`  // bytes
	Size       int64  `json:"size"`   // bytes
	Type       string `json:"type"`
	TypeGUID   string `json:"type-guid,omitempty"` // GPT only
	GUID       string `json:"guid,omitempty"`      // GPT only
	Name       string `json:"name,omitempty"`
	FileSystem string `json:"file-system,omitempty"` // Detect's name
	Label      string `json:"label,omitempty"`
}

// DescribeContents reads img's partitions and file systems (Describe); nil
// when there is nothing to show: no table and no file system, or data that
// cannot be read (an encrypted image opened without its key).
func DescribeContents(img formats.Image) *Contents {
	t, parts, err := Describe(img)
	if err != nil {
		return nil
	}
	if t.Scheme == partition.SchemeNone && (len(parts) == 0 || parts[0].FileSystem == "") {
		return nil
	}
	c := &Contents{Table: string(t.Scheme), SectorSize: int64(t.SectorSize), Hybrid: t.Hybrid,
		Warnings: t.Warnings, Partitions: make([]PartContents, 0, len(parts))}
	for _, p := range parts {
		pc := PartContents{Number: int64(p.Number), Start: p.Start, Size: p.Size, Type: p.Type,
			Name: p.Name, FileSystem: p.FileSystem, Label: p.Label}
		if p.TypeGUID != "" {
			pc.TypeGUID, pc.GUID = p.TypeGUID, p.GUID
		}
		c.Partitions = append(c.Partitions, pc)
	}
	return c
}

// WriteHuman prints c as `vdisk info` does: one line for a file system
// on the whole disk, else the table's scheme and a line per partition.
func (c *Contents) WriteHuman(w io.Writer) {
	if c.Table == string(partition.SchemeNone) && len(c.Partitions) > 0 {
		p := c.Partitions[0]
		fmt.Fprintf(w, "File system: %s%s\n", p.FileSystem, labelText(p.Label))
		return
	}
	extra := ""
	if c.Hybrid {
		extra = ", hybrid MBR"
	}
	fmt.Fprintf(w, "Partition table: %s (%d-byte sectors%s)\n", c.Table, c.SectorSize, extra)
	for _, warn := range c.Warnings {
		fmt.Fprintf(w, "    warning: %s\n", warn)
	}
	fmt.Fprintf(w, "    %-3s %14s %14s  %-24s %-16s %s\n", "#", "start", "size", "type", "name", "file system")
	for _, p := range c.Partitions {
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
