// Package mapview draws an image's allocation map as a picture people can
// look at instead of reading thousands of map lines.
//
// The virtual disk is cut into equal cells laid out in rows (the first row
// starts at offset 0, each row covers Size/Rows bytes). Every cell counts how
// many of its bytes are data held by each layer of the backing chain, zero
// (recorded so, never read), or unallocated (reads as zeros from no layer),
// and shows the class that covers most of it; a cell that holds any data at
// all never shows as empty, so small writes stay visible at any scale. The
// totals are exact byte counts over the whole range, not cell estimates.
//
// Render writes the picture for a terminal (Unicode blocks, optionally ANSI
// colours); SVG and PNG write it as a file for reports.
package mapview

import (
	"context"
	"errors"
	"fmt"

	"github.com/vdiskio/vdisk/formats"
)

// Class is what a cell (or a byte) holds.
type Class int

const (
	// Unallocated: no layer holds the bytes; they read as zeros.
	Unallocated Class = iota
	// Zero: recorded as zeros by some layer; never read.
	Zero
	// Data classes follow: Data+N is data held by layer N (0 = the image).
	Data
)

// Layer is the class of data held by chain layer depth.
func Layer(depth int) Class { return Data + Class(depth) }

// Depth is the layer of a data class; -1 for Zero and Unallocated.
func (c Class) Depth() int {
	if c < Data {
		return -1
	}
	return int(c - Data)
}

// ErrBadGeometry: the requested picture has no cells.
var ErrBadGeometry = errors.New("mapview: the picture needs at least one row and one column")

// windowBytes is how much of the disk one extent query covers.
const windowBytes = 1 << 30

// Map is an image's allocation, summarised per cell.
type Map struct {
	Size    int64    // virtual size in bytes
	Rows    int      // rows of cells
	Columns int      // cells per row
	Layers  []string // file name of each chain layer, top first
	// Bytes counts, per cell (row-major), how many bytes of each class it
	// holds: Bytes[cell][class].
	Bytes [][]int64
	// Totals counts the bytes of each class over the whole image.
	Totals []int64
}

// Build walks img's chain extents and fills a Map of rows × columns cells.
// layers names the chain's files, top first (for the legend); it may be
// shorter than the chain.
func Build(ctx context.Context, img formats.Image, layers []string, rows, columns int) (*Map, error) {
	if rows < 1 || columns < 1 {
		return nil, ErrBadGeometry
	}
	depth := chainDepth(img)
	m := &Map{Size: img.Size(), Rows: rows, Columns: columns, Layers: layers,
		Bytes: make([][]int64, rows*columns), Totals: make([]int64, int(Data)+depth)}
	for i := range m.Bytes {
		m.Bytes[i] = make([]int64, len(m.Totals))
	}
	for off := int64(0); off < m.Size; off += windowBytes {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		exts, err := formats.ChainExtents(img, off, min(windowBytes, m.Size-off))
		if err != nil {
			return nil, err
		}
		for _, e := range exts {
			if err := m.add(e); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// chainDepth counts the layers of img's backing chain (1 for a lone image).
func chainDepth(img formats.Image) int {
	n := 1
	for {
		b, ok := img.(formats.Backer)
		if !ok || b.Backing() == nil {
			return n
		}
		img = b.Backing()
		n++
	}
}

func classOf(e formats.Extent) Class {
	switch e.Kind {
	case formats.Data:
		return Layer(e.Depth)
	case formats.Zero:
		return Zero
	}
	return Unallocated
}

// add spreads one extent over the cells it covers.
func (m *Map) add(e formats.Extent) error {
	c := classOf(e)
	if int(c) >= len(m.Totals) {
		return fmt.Errorf("mapview: extent at %d reports layer %d of a %d-layer chain", e.Offset, e.Depth, len(m.Totals)-int(Data))
	}
	m.Totals[c] += e.Length
	cells := int64(len(m.Bytes))
	for off, end := e.Offset, e.Offset+e.Length; off < end; {
		cell := m.cellAt(off, cells)
		cellEnd := m.cellStart(cell+1, cells)
		n := min(end, cellEnd) - off
		m.Bytes[cell][c] += n
		off += n
	}
	return nil
}

// cellStart is the first byte of cell i (Size for i == cells), computed so
// the cells tile the disk exactly even when Size is not a multiple of cells.
func (m *Map) cellStart(i, cells int64) int64 {
	// Size*i may overflow int64 for huge disks: split the multiplication.
	q, r := m.Size/cells, m.Size%cells
	return q*i + r*i/cells
}

// cellAt is the cell holding byte off.
func (m *Map) cellAt(off, cells int64) int64 {
	lo, hi := int64(0), cells-1
	for lo < hi { // the last cell whose start is <= off
		mid := (lo + hi + 1) / 2
		if m.cellStart(mid, cells) <= off {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}

// CellRange is the byte range [start, end) of cell i.
func (m *Map) CellRange(i int) (start, end int64) {
	cells := int64(len(m.Bytes))
	return m.cellStart(int64(i), cells), m.cellStart(int64(i)+1, cells)
}

// Cell is the class shown for cell i: the data layer holding most bytes if
// the cell holds any data, otherwise whichever of zero and unallocated covers
// more of it.
func (m *Map) Cell(i int) Class {
	counts := m.Bytes[i]
	best, bestN := Unallocated, int64(0)
	for c := Data; int(c) < len(counts); c++ {
		if counts[c] > bestN {
			best, bestN = c, counts[c]
		}
	}
	if bestN > 0 {
		return best
	}
	if counts[Zero] > counts[Unallocated] {
		return Zero
	}
	return Unallocated
}
