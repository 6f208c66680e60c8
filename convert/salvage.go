package convert

import (
	"fmt"
	"io"
)

// sectorBytes is the smallest unit salvage retries.
const sectorBytes = 512

// read fills p from the input at off. Without Salvage a short read is an
// error naming the offset; with it, see salvage.
func (c *copier) read(p []byte, off int64) error {
	n, err := c.src.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	if !c.opts.Salvage {
		return fmt.Errorf("reading input at offset %d: %w", off+int64(n), err)
	}
	var bad []badRange
	c.salvage(p, off, &bad)
	if c.opts.OnReadError != nil {
		for _, b := range bad {
			c.opts.OnReadError(b.off, b.length, b.err)
		}
	}
	return nil
}

// badRange is an unreadable run of sectors.
type badRange struct {
	off, length int64
	err         error
}

// salvage reads p in halves (aligned to sectors) until single sectors;
// sectors that cannot be read are zeroed and added to bad, contiguous ones
// merged.
func (c *copier) salvage(p []byte, off int64, bad *[]badRange) {
	n, err := c.src.ReadAt(p, off)
	if n == len(p) {
		return
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	if len(p) <= sectorBytes {
		clear(p)
		if k := len(*bad); k > 0 && (*bad)[k-1].off+(*bad)[k-1].length == off {
			(*bad)[k-1].length += int64(len(p))
			return
		}
		*bad = append(*bad, badRange{off: off, length: int64(len(p)), err: err})
		return
	}
	half := (len(p)/2 + sectorBytes - 1) / sectorBytes * sectorBytes
	c.salvage(p[:half], off, bad)
	c.salvage(p[half:], off+int64(half), bad)
}
