package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/formats"
)

// mapWindow is how much of the disk one extent query covers.
const mapWindow = 1 << 30

func newMapCommand(g *globals) *cobra.Command {
	var format, output, start, maxLen string
	var vis visualFlags
	cmd := &cobra.Command{
		Use:   "map [-f fmt] [--output=human|json] [--start-offset=N] [--max-length=N] filename",
		Short: "Show which ranges of an image are data, zero or unallocated, and where they are stored",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			img, err := g.open(cmd.Context(), args[0], format, nil)
			if err != nil {
				return err
			}
			defer img.Close()
			from, length, err := mapRange(img.Size(), start, maxLen)
			if err != nil {
				return err
			}
			if vis.target != "" {
				return vis.draw(cmd, img, layerFiles(args[0], img), args[0])
			}
			m := mapper{img: img, files: layerFiles(args[0], img), out: cmd.OutOrStdout()}
			if output == "json" {
				return m.json(from, length)
			}
			return m.human(from, length)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&format, "format", "f", "", "image format (probed when omitted)")
	f.StringVar(&output, "output", "human", "output format: human or json")
	f.StringVar(&start, "start-offset", "0", "first byte to map")
	f.StringVar(&maxLen, "max-length", "", "how many bytes to map")
	vis.register(cmd)
	return cmd
}

func mapRange(size int64, start, maxLen string) (int64, int64, error) {
	from, err := formats.ParseSize(start)
	if err != nil {
		return 0, 0, fmt.Errorf("invalid start offset %q", start)
	}
	from = min(from, size)
	length := size - from
	if maxLen != "" {
		n, err := formats.ParseSize(maxLen)
		if err != nil {
			return 0, 0, fmt.Errorf("invalid max length %q", maxLen)
		}
		length = min(length, n)
	}
	return from, length, nil
}

// layerFiles lists the file name of each layer of the chain, top first.
func layerFiles(path string, img formats.Image) []string {
	files := []string{path}
	for {
		b, ok := img.(formats.Backer)
		if !ok || b.Backing() == nil {
			return files
		}
		files = append(files, b.BackingPath())
		img = b.Backing()
	}
}

type mapper struct {
	img   formats.Image
	files []string
	out   io.Writer
}

// each calls fn for every extent of [from, from+length), merged across
// query windows.
func (m *mapper) each(from, length int64, fn func(formats.Extent) error) error {
	var pending *formats.Extent
	for off := from; off < from+length; off += mapWindow {
		exts, err := formats.ChainExtents(m.img, off, min(mapWindow, from+length-off))
		if err != nil {
			return err
		}
		for _, e := range exts {
			if pending != nil && pending.Continues(e) {
				pending.Length += e.Length
				continue
			}
			if pending != nil {
				if err := fn(*pending); err != nil {
					return err
				}
			}
			pending = &e
		}
	}
	if pending != nil {
		return fn(*pending)
	}
	return nil
}

func (m *mapper) json(from, length int64) error {
	var lines []string
	err := m.each(from, length, func(e formats.Extent) error {
		present := e.Kind != formats.Unallocated
		line := fmt.Sprintf(`{ "start": %d, "length": %d, "depth": %d, "present": %t, "zero": %t, "data": %t`,
			e.Offset, e.Length, e.Depth, present, e.Kind != formats.Data, e.Kind == formats.Data)
		if e.HostOffset >= 0 && present {
			line += fmt.Sprintf(`, "offset": %d`, e.HostOffset)
		}
		lines = append(lines, line+"}")
		return nil
	})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(m.out, "[%s]\n", strings.Join(lines, ",\n"))
	return err
}

// human prints the known-nonzero ranges as qemu-img map does.
func (m *mapper) human(from, length int64) error {
	fmt.Fprintf(m.out, "%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File")
	return m.each(from, length, func(e formats.Extent) error {
		if e.Kind != formats.Data {
			return nil
		}
		if e.HostOffset < 0 {
			return fmt.Errorf("file contains external, encrypted or compressed clusters")
		}
		file := e.HostFile
		if file == "" && e.Depth < len(m.files) {
			file = m.files[e.Depth]
		}
		_, err := fmt.Fprintf(m.out, "%-16s%-16s%-16s%s\n", hex(e.Offset), hex(e.Length), hex(e.HostOffset), file)
		return err
	})
}

func hex(n int64) string {
	if n == 0 {
		return "0"
	}
	return fmt.Sprintf("%#x", n)
}
