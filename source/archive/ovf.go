package archive

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/vdiskio/vdisk/formats"
)

// The limits of an OVF descriptor: a descriptor is a few KiB of XML.
const (
	MaxOVFBytes    = 8 << 20 // the descriptor's size
	MaxOVFDepth    = 64      // element nesting
	MaxOVFElements = 200000  // elements in all
	MaxOVFDisks    = 1024    // References/File and DiskSection/Disk entries
)

// The OVF envelope namespaces (DSP8023 for 1.x, DSP8033 for 2.x).
const (
	OVFNamespace1 = "http://schemas.dmtf.org/ovf/envelope/1"
	OVFNamespace2 = "http://schemas.dmtf.org/ovf/envelope/2"
)

// Envelope is what vdisk reads of an OVF descriptor: the files it
// references and its virtual disks, in document order.
type Envelope struct {
	Namespace string
	Files     []OVFFile
	Disks     []OVFDisk
	// Systems are the ovf:id of the VirtualSystem elements.
	Systems []string
}

// OVFFile is a References/File element.
type OVFFile struct {
	ID          string // ovf:id
	Href        string // ovf:href: a file of the package
	Size        int64  // ovf:size; -1 when absent
	Compression string // ovf:compression ("" or "identity" for none)
	ChunkSize   int64  // ovf:chunkSize; 0 when not chunked
}

// OVFDisk is a DiskSection/Disk element.
type OVFDisk struct {
	DiskID  string // ovf:diskId
	FileRef string // ovf:fileRef: an OVFFile's ID ("" for a blank disk)
	Format  string // ovf:format, a URI naming the disk format
	// CapacityBytes is ovf:capacity times ovf:capacityAllocationUnits;
	// -1 when it is not a number (an OVF property, "${...}").
	CapacityBytes int64
}

// xmlEnvelope mirrors the parts of the schema read; attribute names match
// in any namespace (ovf: of 1.x or 2.x).
type xmlEnvelope struct {
	XMLName    xml.Name
	References struct {
		Files []struct {
			ID          string `xml:"id,attr"`
			Href        string `xml:"href,attr"`
			Size        string `xml:"size,attr"`
			Compression string `xml:"compression,attr"`
			ChunkSize   string `xml:"chunkSize,attr"`
		} `xml:"File"`
	} `xml:"References"`
	DiskSections []struct {
		Disks []struct {
			DiskID   string `xml:"diskId,attr"`
			FileRef  string `xml:"fileRef,attr"`
			Format   string `xml:"format,attr"`
			Capacity string `xml:"capacity,attr"`
			Units    string `xml:"capacityAllocationUnits,attr"`
		} `xml:"Disk"`
	} `xml:"DiskSection"`
	Systems []struct {
		ID string `xml:"id,attr"`
	} `xml:"VirtualSystem"`
	Collections []struct {
		Systems []struct {
			ID string `xml:"id,attr"`
		} `xml:"VirtualSystem"`
	} `xml:"VirtualSystemCollection"`
}

// ParseOVF parses an OVF descriptor; file names it in errors.
func ParseOVF(data []byte, file string) (*Envelope, error) {
	if len(data) > MaxOVFBytes {
		return nil, formats.Limitf(file, "OVF descriptor", 0, "%d bytes (limit %d)", len(data), MaxOVFBytes)
	}
	if err := scanXML(data, file); err != nil {
		return nil, err
	}
	var x xmlEnvelope
	dec := xml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&x); err != nil {
		return nil, formats.Corruptf(file, "OVF descriptor", dec.InputOffset(), "%v", err)
	}
	if x.XMLName.Local != "Envelope" {
		return nil, formats.Corruptf(file, "OVF descriptor", 0, "the root element is <%s>, not an OVF <Envelope>", x.XMLName.Local)
	}
	env := &Envelope{Namespace: x.XMLName.Space}
	if len(x.References.Files) > MaxOVFDisks {
		return nil, formats.Limitf(file, "OVF References", 0, "%d files (limit %d)", len(x.References.Files), MaxOVFDisks)
	}
	for _, f := range x.References.Files {
		of := OVFFile{ID: f.ID, Href: f.Href, Size: -1, Compression: f.Compression}
		if f.Size != "" {
			n, err := strconv.ParseInt(f.Size, 10, 64)
			if err != nil || n < 0 {
				return nil, formats.Corruptf(file, "OVF References", 0, "File %q: ovf:size %q is not a size", f.ID, f.Size)
			}
			of.Size = n
		}
		if f.ChunkSize != "" {
			n, err := strconv.ParseInt(f.ChunkSize, 10, 64)
			if err != nil || n <= 0 {
				return nil, formats.Corruptf(file, "OVF References", 0, "File %q: ovf:chunkSize %q is not a size", f.ID, f.ChunkSize)
			}
			of.ChunkSize = n
		}
		env.Files = append(env.Files, of)
	}
	for _, s := range x.DiskSections {
		for _, d := range s.Disks {
			if len(env.Disks) >= MaxOVFDisks {
				return nil, formats.Limitf(file, "OVF DiskSection", 0, "more than %d disks", MaxOVFDisks)
			}
			env.Disks = append(env.Disks, OVFDisk{DiskID: d.DiskID, FileRef: d.FileRef, Format: d.Format,
				CapacityBytes: capacityBytes(d.Capacity, d.Units)})
		}
	}
	for _, s := range x.Systems {
		env.Systems = append(env.Systems, s.ID)
	}
	for _, c := range x.Collections {
		for _, s := range c.Systems {
			env.Systems = append(env.Systems, s.ID)
		}
	}
	return env, nil
}

// scanXML walks the tokens once, bounding nesting and element count before
// the decoder builds anything (encoding/xml expands no user entities: an
// entity other than XML's five is an error, so "billion laughs" stops at
// its first reference).
func scanXML(data []byte, file string) error {
	dec := xml.NewDecoder(bytes.NewReader(data))
	depth, elements := 0, 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return formats.Corruptf(file, "OVF descriptor", dec.InputOffset(), "%v", err)
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
			elements++
			if depth > MaxOVFDepth {
				return formats.Limitf(file, "OVF descriptor", dec.InputOffset(), "elements nested deeper than %d", MaxOVFDepth)
			}
			if elements > MaxOVFElements {
				return formats.Limitf(file, "OVF descriptor", dec.InputOffset(), "more than %d elements", MaxOVFElements)
			}
		case xml.EndElement:
			depth--
		}
	}
	if elements == 0 {
		return formats.Corruptf(file, "OVF descriptor", 0, "no XML element")
	}
	return nil
}

// capacityBytes applies ovf:capacityAllocationUnits ("byte", "byte *
// 2^30", "byte * 1024", ...) to ovf:capacity; -1 when either is not
// understood or the product overflows.
func capacityBytes(capacity, units string) int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(capacity), 10, 64)
	if err != nil || n < 0 {
		return -1
	}
	mult := int64(1)
	u := strings.ReplaceAll(units, " ", "")
	switch {
	case u == "" || u == "byte":
	case strings.HasPrefix(u, "byte*2^"):
		e, err := strconv.Atoi(u[len("byte*2^"):])
		if err != nil || e < 0 || e > 62 {
			return -1
		}
		mult = 1 << e
	case strings.HasPrefix(u, "byte*"):
		m, err := strconv.ParseInt(u[len("byte*"):], 10, 64)
		if err != nil || m <= 0 {
			return -1
		}
		mult = m
	default:
		return -1
	}
	if n > (1<<63-1)/mult {
		return -1
	}
	return n * mult
}

// ValidHref reports why an ovf:href may not name a member of the same
// archive ("" when it may): vdisk reads only the archive's own members,
// never a URL or a path that climbs out of the package.
func ValidHref(href string) string {
	switch {
	case href == "":
		return "empty"
	case strings.Contains(href, "://") || strings.HasPrefix(strings.ToLower(href), "file:"):
		return "a URL (vdisk reads only files inside the archive)"
	case strings.HasPrefix(href, "/") || strings.Contains(href, "\\") || (len(href) > 1 && href[1] == ':'):
		return "an absolute path"
	case href == ".." || strings.HasPrefix(href, "../") || strings.Contains(href, "/../") || strings.HasSuffix(href, "/.."):
		return "a path that leaves the package"
	case strings.ContainsRune(href, 0):
		return "a name with NUL"
	}
	return ""
}

// describe names a disk for errors.
func (d OVFDisk) describe() string { return fmt.Sprintf("Disk %q", d.DiskID) }
