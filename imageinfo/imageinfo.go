// Package imageinfo assembles what `qemu-img info` reports about an image
// (qemu's ImageInfo: virtual and actual size, format, cluster size,
// format-specific details, backing file, snapshots, dirty flag) as ordered
// objects in qemu's key order, and prints them as qemu's JSON pretty
// printer does, so that clients parsing qemu-img's output read vdisk's.
package imageinfo

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/sparse"
)

// Chain is Image for img and, when chain, for every image below it in its
// backing chain (named by their resolved paths), top first.
func Chain(name string, img formats.Image, chain bool) []formats.Object {
	infos := []formats.Object{Image(name, img)}
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

// Image builds qemu's ImageInfo object for img, named name (the path the
// user gave), in qemu's key order. actual-size is the host allocation of
// name unless the image reports its own (several files).
func Image(path string, img formats.Image) formats.Object {
	var info formats.Info
	if in, ok := img.(formats.Informer); ok {
		info = in.Info()
	}
	var obj formats.Object
	add := func(k string, v any) { obj = append(obj, formats.Field{Key: k, Value: v}) }
	b, hasBacking := img.(formats.Backer)
	hasBacking = hasBacking && b.BackingName() != ""
	if hasBacking && b.BackingFormat() != "" {
		add("backing-filename-format", b.BackingFormat())
	}
	if len(info.Snapshots) > 0 {
		add("snapshots", Snapshots(info.Snapshots))
	}
	add("virtual-size", img.Size())
	add("filename", path)
	format, asRaw := BlockLayerFormat(img)
	if info.ClusterSize > 0 && !asRaw {
		add("cluster-size", info.ClusterSize)
	}
	add("format", format)
	actual := info.ActualSize
	var err error
	if actual == 0 {
		actual, err = sparse.AllocatedPath(path)
	}
	if err == nil { // qemu omits it when unknown (an NBD export)
		add("actual-size", actual)
	}
	if info.Details != nil {
		add("format-specific", formats.Object{{Key: "type", Value: img.Format()}, {Key: "data", Value: Ordered(info.Details)}})
	} else if info.Specific != nil {
		add("format-specific", formats.Object{{Key: "type", Value: img.Format()}, {Key: "data", Value: info.Specific}})
	}
	if info.Encrypted {
		add("encrypted", true)
	}
	if hasBacking {
		full := b.BackingPath()
		if full == "" {
			full = b.BackingName()
		}
		add("full-backing-filename", full)
		add("backing-filename", b.BackingName())
	}
	add("dirty-flag", info.DirtyFlag)
	return obj
}

// Snapshots is qemu's list of SnapshotInfo objects.
func Snapshots(snaps []formats.Snapshot) []any {
	var out []any
	for _, s := range snaps {
		out = append(out, formats.Object{
			{Key: "icount", Value: s.ICount},
			{Key: "vm-clock-nsec", Value: s.VMClockNsec % 1e9},
			{Key: "name", Value: s.Name},
			{Key: "date-sec", Value: s.DateSec},
			{Key: "date-nsec", Value: s.DateNsec},
			{Key: "vm-clock-sec", Value: s.VMClockNsec / 1e9},
			{Key: "id", Value: s.ID},
			{Key: "vm-state-size", Value: s.VMStateSize},
		})
	}
	return out
}

// WriteJSON prints v as qemu's pretty printer does: 4-space indent,
// `"key": value`, keys in the given order. v is a formats.Object, a []any,
// a []formats.Object or a scalar.
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
	case formats.Object:
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
	case []formats.Object:
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
