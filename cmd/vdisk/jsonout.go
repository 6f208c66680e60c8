package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/vdiskio/vdisk/formats"
)

// writeJSON prints v as qemu's pretty printer does: 4-space indent,
// `"key": value`, keys in the given order. v is a formats.Object, a []any,
// a []formats.Object or a scalar.
func writeJSON(w io.Writer, v any) error {
	var b strings.Builder
	encodeValue(&b, v, 0)
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

// humanSize formats a byte count as qemu's size_to_str: three significant
// digits and a binary unit ("2.07 MiB", "64 MiB", "0 B").
func humanSize(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v := float64(n)
	i := 0
	for v >= 1000 && i < len(units)-1 { // qemu switches unit at 1000 of the smaller one
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.3g %s", v, units[i])
}
