package fileio

import "io"

// tableChunkBytes is how much of a table ReadChunks reads at a time.
const tableChunkBytes = 64 << 10

// ReadChunks reads length bytes of r at off in chunks of at most 64 KiB
// (whole multiples of unit bytes) and gives each to fn with its offset from
// off, so that a table is decoded without a second copy of it in memory.
// A short read is io.ErrUnexpectedEOF (wrapping nothing else), a read
// error is returned as it is; bytes read before either were given to fn.
func ReadChunks(r io.ReaderAt, off, length int64, unit int, fn func(chunk []byte, rel int64)) error {
	step := int64(max(unit, tableChunkBytes/max(unit, 1)*unit))
	buf := make([]byte, min(step, length))
	for rel := int64(0); rel < length; rel += step {
		chunk := buf[:min(step, length-rel)]
		n, err := r.ReadAt(chunk, off+rel)
		if n < len(chunk) {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		fn(chunk, rel)
	}
	return nil
}
