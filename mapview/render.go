package mapview

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"strings"
)

// Glyphs for a terminal: data layers get the densest blocks, top layer first.
var dataGlyphs = []rune{'█', '▓', '▒', '▞', '▚', '▙', '▟', '▛'}

const (
	zeroGlyph  = '░'
	unallGlyph = '·'
)

// ANSI foreground colours for data layers (top first), zero and unallocated.
var ansiData = []string{"\x1b[34m", "\x1b[32m", "\x1b[35m", "\x1b[36m", "\x1b[33m", "\x1b[31m"}

const (
	ansiZero  = "\x1b[90m"
	ansiUnall = "\x1b[2m"
	ansiReset = "\x1b[0m"
)

// RGB colours for files, matching the terminal's.
var rgbData = []color.RGBA{
	{0x1f, 0x5f, 0xbf, 0xff}, {0x2e, 0x9e, 0x44, 0xff}, {0x9b, 0x3f, 0xb5, 0xff},
	{0x1b, 0xa3, 0xa3, 0xff}, {0xc9, 0x9a, 0x16, 0xff}, {0xc2, 0x3b, 0x3b, 0xff},
}

var (
	rgbZero  = color.RGBA{0xb8, 0xb8, 0xb8, 0xff}
	rgbUnall = color.RGBA{0xf2, 0xf2, 0xf2, 0xff}
)

func glyph(c Class) rune {
	switch c {
	case Zero:
		return zeroGlyph
	case Unallocated:
		return unallGlyph
	}
	return dataGlyphs[c.Depth()%len(dataGlyphs)]
}

func ansi(c Class) string {
	switch c {
	case Zero:
		return ansiZero
	case Unallocated:
		return ansiUnall
	}
	return ansiData[c.Depth()%len(ansiData)]
}

func rgb(c Class) color.RGBA {
	switch c {
	case Zero:
		return rgbZero
	case Unallocated:
		return rgbUnall
	}
	return rgbData[c.Depth()%len(rgbData)]
}

// Render writes the picture for a terminal: one line per row, led by the
// row's start offset, then the legend and the totals. colour adds ANSI
// colours (for a terminal that shows them).
func (m *Map) Render(w io.Writer, colour bool) error {
	var b strings.Builder
	for r := 0; r < m.Rows; r++ {
		start, _ := m.CellRange(r * m.Columns)
		fmt.Fprintf(&b, "%9s │", HumanBytes(start))
		last := ""
		for col := 0; col < m.Columns; col++ {
			c := m.Cell(r*m.Columns + col)
			if colour {
				if s := ansi(c); s != last {
					b.WriteString(s)
					last = s
				}
			}
			b.WriteRune(glyph(c))
		}
		if colour {
			b.WriteString(ansiReset)
		}
		b.WriteString("│\n")
	}
	fmt.Fprintf(&b, "%9s   one cell = %s\n", "", HumanBytes(m.cellBytes()))
	for _, line := range m.legend() {
		sample := string(glyph(line.class))
		if colour {
			sample = ansi(line.class) + sample + ansiReset
		}
		fmt.Fprintf(&b, "  %s %s\n", sample, line.text)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// cellBytes is the (rounded up) size one cell covers.
func (m *Map) cellBytes() int64 {
	cells := int64(m.Rows * m.Columns)
	return (m.Size + cells - 1) / cells
}

type legendLine struct {
	class Class
	text  string
}

// legend lists each class present, with its exact total and share.
func (m *Map) legend() []legendLine {
	var lines []legendLine
	add := func(c Class, what string) {
		n := m.Totals[c]
		lines = append(lines, legendLine{c, fmt.Sprintf("%-34s %10s  %5.1f%%  (%d bytes)",
			what, HumanBytes(n), percent(n, m.Size), n)})
	}
	for d := 0; int(Layer(d)) < len(m.Totals); d++ {
		what := "data"
		if len(m.Totals)-int(Data) > 1 {
			what = fmt.Sprintf("data in layer %d", d)
		}
		if d < len(m.Layers) && m.Layers[d] != "" {
			what += " (" + m.Layers[d] + ")"
		}
		add(Layer(d), what)
	}
	add(Zero, "zero (recorded, never read)")
	add(Unallocated, "unallocated (reads as zeros)")
	return lines
}

func percent(n, of int64) float64 {
	if of == 0 {
		return 0
	}
	return float64(n) * 100 / float64(of)
}

// HumanBytes writes n with a binary unit, as people read sizes.
func HumanBytes(n int64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	v, u := float64(n), -1
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	return fmt.Sprintf("%.1f %ciB", v, units[u])
}

// SVG geometry, in pixels.
const (
	svgCell   = 8
	svgMargin = 90
	svgLine   = 18
)

// SVG writes the picture as an SVG document: the cells, each with a tooltip
// giving its byte range, then the legend with the totals.
func (m *Map) SVG(w io.Writer, title string) error {
	legend := m.legend()
	width := svgMargin + m.Columns*svgCell + 20
	height := 40 + m.Rows*svgCell + 20 + len(legend)*svgLine + 10
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="monospace" font-size="12">`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="10" y="20" font-size="14">%s</text>`+"\n", xmlEscape(title))
	for r := 0; r < m.Rows; r++ {
		y := 30 + r*svgCell
		start, _ := m.CellRange(r * m.Columns)
		fmt.Fprintf(&b, `<text x="10" y="%d" font-size="8">%s</text>`+"\n", y+svgCell-1, HumanBytes(start))
		for col := 0; col < m.Columns; col++ {
			i := r*m.Columns + col
			lo, hi := m.CellRange(i)
			c := rgb(m.Cell(i))
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="#%02x%02x%02x"><title>%d-%d</title></rect>`+"\n",
				svgMargin+col*svgCell, y, svgCell, svgCell, c.R, c.G, c.B, lo, hi)
		}
	}
	y := 30 + m.Rows*svgCell + 20
	for _, line := range legend {
		c := rgb(line.class)
		fmt.Fprintf(&b, `<rect x="10" y="%d" width="12" height="12" fill="#%02x%02x%02x" stroke="#666"/>`, y, c.R, c.G, c.B)
		fmt.Fprintf(&b, `<text x="30" y="%d" xml:space="preserve">%s</text>`+"\n", y+10, xmlEscape(line.text))
		y += svgLine
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

// PNG writes the cells as a PNG picture (scale pixels per cell, no text: the
// legend is Render's or SVG's).
func (m *Map) PNG(w io.Writer, scale int) error {
	if scale < 1 {
		scale = 1
	}
	img := image.NewRGBA(image.Rect(0, 0, m.Columns*scale, m.Rows*scale))
	for i := range m.Bytes {
		c := rgb(m.Cell(i))
		x0, y0 := (i%m.Columns)*scale, (i/m.Columns)*scale
		for y := y0; y < y0+scale; y++ {
			for x := x0; x < x0+scale; x++ {
				img.SetRGBA(x, y, c)
			}
		}
	}
	return png.Encode(w, img)
}
