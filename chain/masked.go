package chain

import "github.com/vdiskio/vdisk/formats"

// Masked is a view of an image that keeps only the ranges given (sorted,
// disjoint [offset, length) pairs, such as the ranges a dirty bitmap marks):
// elsewhere its extents are Unallocated, so a conversion into an overlay
// leaves those ranges to the backing file. Reads pass through. The view
// does not own the image (Close does nothing).
type Masked struct {
	formats.Image
	keep [][2]int64
}

// NewMasked returns the view of img restricted to keep.
func NewMasked(img formats.Image, keep [][2]int64) *Masked { return &Masked{Image: img, keep: keep} }

// Extents reports img's extents inside the kept ranges, Unallocated outside.
func (m *Masked) Extents(off, length int64) ([]formats.Extent, error) {
	end := min(off+length, m.Size())
	var out []formats.Extent
	gap := func(from, to int64) {
		if to > from {
			out = append(out, formats.Extent{Offset: from, Length: to - from, Kind: formats.Unallocated, HostOffset: -1})
		}
	}
	pos := off
	for _, k := range m.keep {
		lo, hi := max(k[0], pos), min(k[0]+k[1], end)
		if hi <= lo {
			continue
		}
		gap(pos, lo)
		exts, err := m.Image.Extents(lo, hi-lo)
		if err != nil {
			return nil, err
		}
		out = append(out, exts...)
		pos = hi
	}
	gap(pos, end)
	return out, nil
}

// Close leaves the image open (its owner closes it).
func (m *Masked) Close() error { return nil }
