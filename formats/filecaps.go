package formats

import "fmt"

// ExtentsFile is a File that knows its own allocation, as an NBD export
// does through block status. FileExtents asks it instead of looking for
// holes with SEEK_DATA/SEEK_HOLE, so a raw image on such a file converts
// sparsely. Offsets are file offsets; HostOffset equals Offset.
type ExtentsFile interface {
	File
	FileExtents(off, length int64) ([]Extent, error)
}

// shiftExtents asks f for [fileOff, fileOff+length) and moves the answer to
// virtual offset virtOff, checking that it covers the range in order.
func shiftExtents(f ExtentsFile, virtOff, fileOff, length int64) ([]Extent, error) {
	exts, err := f.FileExtents(fileOff, length)
	if err != nil {
		return nil, fmt.Errorf("%s: allocation status: %w", f.Name(), err)
	}
	out := make([]Extent, 0, len(exts))
	next := fileOff
	for _, e := range exts {
		if e.Offset != next || e.Length <= 0 {
			return nil, fmt.Errorf("%s: allocation status: extent %d+%d where %d was expected", f.Name(), e.Offset, e.Length, next)
		}
		next = e.End()
		e.HostOffset = e.Offset
		e.Offset += virtOff - fileOff
		out = append(out, e)
	}
	if next != fileOff+length {
		return nil, fmt.Errorf("%s: allocation status covers %d of %d bytes", f.Name(), next-fileOff, length)
	}
	return out, nil
}
