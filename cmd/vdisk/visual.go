package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/mapview"
)

// visualFlags are map's picture options.
type visualFlags struct {
	target string // "-" for the terminal, else an .svg or .png file
	width  int
	rows   int
}

func (v *visualFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&v.target, "visual", "", "draw the map as a picture: on the terminal (--visual), or into FILE.svg or FILE.png (--visual=FILE)")
	f.Lookup("visual").NoOptDefVal = "-"
	f.IntVar(&v.width, "width", 0, "picture width in cells (default: the terminal's width, or $COLUMNS, or 80)")
	f.IntVar(&v.rows, "rows", 16, "picture height in rows of cells")
}

// columns is the number of cells per row: --width, else what fits the
// terminal beside the offset labels.
func (v *visualFlags) columns(cmd *cobra.Command) int {
	if v.width > 0 {
		return v.width
	}
	if v.target != "-" {
		return 128
	}
	cols := terminalColumns(cmd.OutOrStdout())
	if cols == 0 {
		cols, _ = strconv.Atoi(os.Getenv("COLUMNS"))
	}
	if cols <= 0 {
		cols = 80
	}
	return max(cols-13, 8) // the offset label and the frame
}

func (v *visualFlags) draw(cmd *cobra.Command, img formats.Image, layers []string, name string) error {
	if v.rows < 1 || v.width < 0 {
		return fmt.Errorf("--rows and --width must be positive")
	}
	m, err := mapview.Build(cmd.Context(), img, layers, v.rows, v.columns(cmd))
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if v.target == "-" {
		fmt.Fprintf(out, "%s: %s, %s\n", name, img.Format(), mapview.HumanBytes(img.Size()))
		colour := terminalColumns(out) > 0 && os.Getenv("NO_COLOR") == ""
		return m.Render(out, colour)
	}
	var write func(*os.File) error
	switch strings.ToLower(filepath.Ext(v.target)) {
	case ".svg":
		write = func(f *os.File) error { return m.SVG(f, name+": "+img.Format()+", "+mapview.HumanBytes(img.Size())) }
	case ".png":
		write = func(f *os.File) error { return m.PNG(f, 4) }
	default:
		return fmt.Errorf("--visual=%s: the picture file must end in .svg or .png", v.target)
	}
	return writeFileAtomic(v.target, write)
}

// writeFileAtomic writes path through a temporary file renamed into place,
// so a failure leaves no partial picture.
func writeFileAtomic(path string, write func(*os.File) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".vdisk-*.tmp")
	if err != nil {
		return err
	}
	if err := write(tmp); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}
