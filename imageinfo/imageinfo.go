// Package imageinfo assembles what `qemu-img info` reports about an image
// (qemu's ImageInfo: virtual and actual size, format, cluster size, the
// driver's typed format-specific details, backing file, snapshots, dirty
// flag) and prints it as qemu's JSON pretty printer does (WriteJSON), so
// that clients parsing qemu-img's output read vdisk's, and as qemu-img's
// human text (WriteHuman), both from the same typed values.
package imageinfo

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/sparse"
)

// ImageInfo is qemu's ImageInfo, what `qemu-img info` reports of one
// image; its json tags are qemu's keys in qemu's order, so WriteJSON prints
// what qemu-img prints, and WriteHuman prints qemu-img's human text from
// the same values.
type ImageInfo struct {
	BackingFilenameFormat string         `json:"backing-filename-format,omitempty"`
	Snapshots             []SnapshotInfo `json:"snapshots,omitempty"`
	VirtualSize           int64          `json:"virtual-size"`
	Filename              string         `json:"filename"` // as the user named the image
	ClusterSize           int64          `json:"cluster-size,omitempty"`
	Format                string         `json:"format"` // the block layer's name (raw for an ISO)
	// ActualSize is the host bytes allocated; nil when unknown (qemu omits
	// it then).
	ActualSize     *int64          `json:"actual-size"`
	FormatSpecific *FormatSpecific `json:"format-specific"`
	Encrypted      bool            `json:"encrypted,omitempty"`
	// The backing file, as resolved and as the image names it.
	FullBackingFilename string `json:"full-backing-filename,omitempty"`
	BackingFilename     string `json:"backing-filename,omitempty"`
	DirtyFlag           bool   `json:"dirty-flag"`
	// Contents is what the disk holds (vdisk's own, after qemu's keys): an
	// *fsys.Contents, set by the caller; nil for none.
	Contents any `json:"vdisk-partitions"`
	// Compression names the compression of the source file (vdisk's own).
	Compression string `json:"vdisk-compression,omitempty"`
	// Archive describes the archive the image is a member of (vdisk's
	// own, set by the caller); nil for none.
	Archive any `json:"vdisk-archive"`
}

// FormatSpecific is qemu's ImageInfoSpecific: the driver's name and its
// typed details (formats.Info.Details).
type FormatSpecific struct {
	Type string `json:"type"`
	Data any    `json:"data"`
}

// SnapshotInfo is qemu's SnapshotInfo.
type SnapshotInfo struct {
	ICount      uint64 `json:"icount"`
	VMClockNsec uint64 `json:"vm-clock-nsec"` // below the second
	Name        string `json:"name"`
	DateSec     int64  `json:"date-sec"`
	DateNsec    int64  `json:"date-nsec"`
	VMClockSec  uint64 `json:"vm-clock-sec"`
	ID          string `json:"id"`
	VMStateSize uint64 `json:"vm-state-size"` // bytes
}

// Chain is Image for img and, when chain, for every image below it in its
// backing chain (named by their resolved paths), top first.
func Chain(name string, img formats.Image, chain bool) []*ImageInfo {
	infos := []*ImageInfo{Image(name, img)}
	for layer := img; chain; {
		b, ok := layer.(formats.Backer)
		if !ok || b.Backing() == nil {
			break
		}
		layer = b.Backing()
		infos = append(infos, Image(b.BackingPath(), layer))
	}
	return infos
}

// BlockLayerFormat is the format info reports: qemu's block layer sees a
// raw-compatible image (an ISO 9660 file system, whose bytes are the disk)
// as raw, and clients (CDI, Lima) accept only qemu's format names; its
// own details stay in format-specific under their type ("iso").
func BlockLayerFormat(img formats.Image) (name string, asRaw bool) {
	if d, err := formats.Lookup(img.Format()); err == nil && d.RawCompatible {
		return "raw", true
	}
	return img.Format(), false
}

// Image describes img, named path (the path the user gave). actual-size is
// the host allocation of path unless the image reports its own (several
// files).
func Image(path string, img formats.Image) *ImageInfo {
	var info formats.Info
	if in, ok := img.(formats.Informer); ok {
		info = in.Info()
	}
	out := &ImageInfo{VirtualSize: img.Size(), Filename: path, Snapshots: Snapshots(info.Snapshots),
		Encrypted: info.Encrypted, DirtyFlag: info.DirtyFlag}
	format, asRaw := BlockLayerFormat(img)
	out.Format = format
	if info.ClusterSize > 0 && !asRaw {
		out.ClusterSize = info.ClusterSize
	}
	actual := info.ActualSize
	var err error
	if actual == 0 {
		actual, err = sparse.AllocatedPath(path)
	}
	if err == nil { // qemu omits it when unknown (an NBD export)
		out.ActualSize = &actual
	}
	if info.Details != nil {
		out.FormatSpecific = &FormatSpecific{Type: img.Format(), Data: info.Details}
	}
	if b, ok := img.(formats.Backer); ok && b.BackingName() != "" {
		out.BackingFilenameFormat = b.BackingFormat()
		out.BackingFilename, out.FullBackingFilename = b.BackingName(), b.BackingPath()
		if out.FullBackingFilename == "" {
			out.FullBackingFilename = b.BackingName()
		}
	}
	return out
}

// Snapshots is qemu's list of SnapshotInfo; nil when there are none.
func Snapshots(snaps []formats.Snapshot) []SnapshotInfo {
	var out []SnapshotInfo
	for _, s := range snaps {
		out = append(out, SnapshotInfo{ICount: s.ICount, VMClockNsec: s.VMClockNsec % 1e9, Name: s.Name,
			DateSec: s.DateSec, DateNsec: s.DateNsec, VMClockSec: s.VMClockNsec / 1e9, ID: s.ID,
			VMStateSize: s.VMStateSize})
	}
	return out
}

// WriteJSON prints v as qemu's pretty printer does: 4-space indent,
// `"key": value`, keys in the given order. v is a Object, a []any,
// a []Object or a scalar.
func WriteJSON(w io.Writer, v any) error {
	var b strings.Builder
	encodeValue(&b, Ordered(v), 0)
	b.WriteByte('\n')
	_, err := io.WriteString(w, b.String())
	return err
}

func encodeValue(b *strings.Builder, v any, depth int) {
	indent := strings.Repeat("    ", depth+1)
	closeIndent := strings.Repeat("    ", depth)
	switch x := v.(type) {
	case Object:
		if len(x) == 0 {
			b.WriteString("{}")
			return
		}
		b.WriteString("{\n")
		for i, f := range x {
			b.WriteString(indent)
			encodeScalar(b, f.Key)
			b.WriteString(": ")
			encodeValue(b, f.Value, depth+1)
			if i < len(x)-1 {
				b.WriteByte(',')
			}
			b.WriteByte('\n')
		}
		b.WriteString(closeIndent + "}")
	case []Object:
		encodeValue(b, anys(x), depth)
	case []any:
		if len(x) == 0 {
			b.WriteString("[]")
			return
		}
		b.WriteString("[\n")
		for i, item := range x {
			b.WriteString(indent)
			encodeValue(b, item, depth+1)
			if i < len(x)-1 {
				b.WriteByte(',')
			}
			b.WriteByte('\n')
		}
		b.WriteString(closeIndent + "]")
	case []string:
		encodeValue(b, anys(x), depth)
	default:
		encodeScalar(b, v)
	}
}

// anys converts a typed list for encodeValue's []any case.
func anys[T any](xs []T) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

func encodeScalar(b *strings.Builder, v any) {
	out, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintf(b, "%q", fmt.Sprint(v))
		return
	}
	b.Write(out)
}

// HumanSize formats a byte count as qemu's size_to_str: three significant
// digits and a binary unit ("2.07 MiB", "64 MiB", "0 B").
func HumanSize(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v := float64(n)
	i := 0
	for v >= 1000 && i < len(units)-1 { // qemu switches unit at 1000 of the smaller one
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.3g %s", v, units[i])
}
