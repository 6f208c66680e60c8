package fileio

import "io"

// ReadFull reads exactly len(p) bytes of r at off. A short read is
// io.ErrUnexpectedEOF (even when r said io.EOF), another error is returned
// as it is: a structure that must be whole (a volume descriptor, a header)
// is never taken from a file cut short.
func ReadFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// ReadPadded reads len(p) bytes of r at off where bytes past the end of
// the file read as zeros (a last block or table a writer has not extended
// the file over yet): only a read error fails it, never io.EOF.
func ReadPadded(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if err != nil && err != io.EOF {
		return err
	}
	clear(p[n:])
	return nil
}
