package vmdk

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/vdiskio/vdisk/formats"
)

// Descriptor limits: qemu reads at most 1 MiB - 1 of descriptor text.
const (
	maxCreateTypeLen = 63
	maxValueLen      = 4096
	maxExtentLines   = 1 << 16
	noParentCID      = 0xffffffff
)

// extentLine is one line of the "# Extent description" section:
// ACCESS SECTORS TYPE "file" [OFFSET].
type extentLine struct {
	Access  string // RW, RDONLY or NOACCESS
	Sectors uint64 // extent length in 512-byte sectors
	Type    string // SPARSE, FLAT, ZERO, VMFS, VMFSSPARSE, ...
	File    string // extent file name, relative to the descriptor ("" for ZERO)
	Offset  uint64 // FLAT/VMFS: first sector of the extent in File
}

// ddbEntry is one `ddb.key = "value"` line of the disk database.
type ddbEntry struct {
	Key, Value string
}

// descriptor is a parsed text descriptor.
type descriptor struct {
	Version            int
	CID                uint32
	ParentCID          uint32
	CreateType         string
	ParentFileNameHint string
	Encoding           string
	Extents            []extentLine
	DDB                []ddbEntry
}

// parseDescriptor parses descriptor text. Every line must be blank, a
// comment, a key=value header field, a ddb entry or an extent line; values
// may be quoted or not (VMware's tools accept both).
func parseDescriptor(file string, text []byte) (*descriptor, error) {
	if len(text) > maxDescBytes {
		return nil, formats.Limitf(file, "descriptor", -1, "%d bytes exceed %d", len(text), maxDescBytes)
	}
	d := &descriptor{Version: 1, ParentCID: noParentCID}
	sawCID := false
	for lineNo, line := range strings.Split(string(text), "\n") {
		line = strings.TrimSpace(strings.TrimRight(line, "\r"))
		if err := checkText(line); err != nil {
			return nil, formats.Corruptf(file, "descriptor", -1, "line %d: %v", lineNo+1, err)
		}
		if line == "" || line[0] == '#' {
			continue
		}
		var err error
		switch {
		case isExtentLine(line):
			if len(d.Extents) >= maxExtentLines {
				return nil, formats.Limitf(file, "descriptor", -1, "more than %d extents", maxExtentLines)
			}
			var e extentLine
			if e, err = parseExtentLine(line); err == nil {
				d.Extents = append(d.Extents, e)
			}
		case strings.HasPrefix(strings.ToLower(line), "ddb."):
			err = d.parseDDB(line)
		default:
			var isCID bool
			isCID, err = d.parseField(line)
			sawCID = sawCID || isCID
		}
		if err != nil {
			return nil, formats.Corruptf(file, "descriptor", -1, "line %d %q: %v", lineNo+1, clip(line), err)
		}
	}
	if !sawCID {
		return nil, formats.Corruptf(file, "descriptor", -1, "no CID")
	}
	if len(d.Extents) == 0 {
		return nil, formats.Corruptf(file, "descriptor", -1, "no extents")
	}
	return d, nil
}

// checkText refuses control characters other than tabs (binary garbage).
func checkText(line string) error {
	for i := 0; i < len(line); i++ {
		if c := line[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return fmt.Errorf("control byte 0x%02x", c)
		}
	}
	return nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

func isExtentLine(line string) bool {
	word, _, _ := strings.Cut(line, " ")
	switch strings.ToUpper(word) {
	case "RW", "RDONLY", "NOACCESS":
		return true
	}
	return false
}

// unquote strips one pair of double quotes; unquoted values are accepted.
func unquote(v string) (string, error) {
	v = strings.TrimSpace(v)
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	if strings.ContainsRune(v, '"') {
		return "", fmt.Errorf("stray quote")
	}
	if len(v) > maxValueLen {
		return "", fmt.Errorf("value longer than %d bytes", maxValueLen)
	}
	return v, nil
}

// parseField parses a header field; it reports whether it was the CID.
func (d *descriptor) parseField(line string) (bool, error) {
	key, value, ok := strings.Cut(line, "=")
	if !ok {
		return false, fmt.Errorf("not key=value")
	}
	key = strings.TrimSpace(key)
	if key == "" || strings.ContainsAny(key, " \t") {
		return false, fmt.Errorf("bad key")
	}
	v, err := unquote(value)
	if err != nil {
		return false, err
	}
	switch strings.ToLower(key) {
	case "version":
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 3 {
			return false, fmt.Errorf("descriptor version %q", v)
		}
		d.Version = n
	case "cid":
		n, err := strconv.ParseUint(v, 16, 32)
		if err != nil {
			return false, fmt.Errorf("CID %q", v)
		}
		d.CID = uint32(n)
		return true, nil
	case "parentcid":
		n, err := strconv.ParseUint(v, 16, 32)
		if err != nil {
			return false, fmt.Errorf("parentCID %q", v)
		}
		d.ParentCID = uint32(n)
	case "createtype":
		if len(v) > maxCreateTypeLen {
			return false, fmt.Errorf("createType longer than %d bytes", maxCreateTypeLen)
		}
		d.CreateType = v
	case "parentfilenamehint":
		d.ParentFileNameHint = v
	case "encoding":
		d.Encoding = v
	}
	return false, nil
}

func (d *descriptor) parseDDB(line string) error {
	key, value, ok := strings.Cut(line, "=")
	if !ok {
		return fmt.Errorf("ddb entry without '='")
	}
	v, err := unquote(value)
	if err != nil {
		return err
	}
	if len(d.DDB) >= maxExtentLines {
		return fmt.Errorf("too many ddb entries")
	}
	d.DDB = append(d.DDB, ddbEntry{Key: strings.TrimSpace(key), Value: v})
	return nil
}

// parseExtentLine parses `ACCESS SECTORS TYPE ["file" [OFFSET]]`.
func parseExtentLine(line string) (extentLine, error) {
	var e extentLine
	head, rest, quoted := strings.Cut(line, "\"")
	f := strings.Fields(head)
	if len(f) != 3 {
		return e, fmt.Errorf("want ACCESS SECTORS TYPE \"file\"")
	}
	e.Access, e.Type = strings.ToUpper(f[0]), strings.ToUpper(f[2])
	n, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil || n > uint64(formats.DefaultMaxVirtualSize) {
		return e, fmt.Errorf("extent size %q", f[1])
	}
	e.Sectors = n
	if !quoted {
		if e.Type != "ZERO" {
			return e, fmt.Errorf("%s extent without a file name", e.Type)
		}
		return e, nil
	}
	name, tail, ok := strings.Cut(rest, "\"")
	if !ok || name == "" {
		return e, fmt.Errorf("unterminated or empty file name")
	}
	e.File = name
	tail = strings.TrimSpace(tail)
	if tail != "" {
		off, err := strconv.ParseUint(tail, 10, 64)
		if err != nil || off > uint64(formats.DefaultMaxVirtualSize) {
			return e, fmt.Errorf("extent offset %q", tail)
		}
		e.Offset = off
	}
	return e, nil
}

// format renders the descriptor as VMware and qemu write it, every value
// quoted.
func (d *descriptor) format() string {
	var b strings.Builder
	b.WriteString("# Disk DescriptorFile\n")
	fmt.Fprintf(&b, "version=%d\n", d.Version)
	if d.Encoding != "" {
		fmt.Fprintf(&b, "encoding=\"%s\"\n", d.Encoding)
	}
	fmt.Fprintf(&b, "CID=%08x\n", d.CID)
	fmt.Fprintf(&b, "parentCID=%08x\n", d.ParentCID)
	fmt.Fprintf(&b, "createType=\"%s\"\n", d.CreateType)
	if d.ParentFileNameHint != "" {
		fmt.Fprintf(&b, "parentFileNameHint=\"%s\"\n", d.ParentFileNameHint)
	}
	b.WriteString("\n# Extent description\n")
	for _, e := range d.Extents {
		fmt.Fprintf(&b, "%s %d %s", e.Access, e.Sectors, e.Type)
		if e.File != "" {
			fmt.Fprintf(&b, " \"%s\"", e.File)
		}
		if e.Type == "FLAT" || e.Type == "VMFS" {
			fmt.Fprintf(&b, " %d", e.Offset)
		}
		b.WriteString("\n")
	}
	b.WriteString("\n# The Disk Data Base\n#DDB\n\n")
	for _, e := range d.DDB {
		fmt.Fprintf(&b, "%s = \"%s\"\n", e.Key, e.Value)
	}
	return b.String()
}
