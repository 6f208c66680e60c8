package split

import (
	"fmt"
	"io"
	"path/filepath"
	"sync"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/imageio"
)

// Creator makes the files of a set being written. The conversion engine's
// output supplies temporaries that are renamed into place only when the
// whole image is complete, so nothing half-written is ever seen under a
// piece's name.
type Creator interface {
	// Create makes a new, empty, writable file that will be path.
	Create(path string) (formats.File, error)
	// Discard drops a file Create made that is not part of the set after
	// all (the image shrank below it).
	Discard(path string)
}

// Writer is a formats.File written as pieces of pieceBytes each.
type Writer struct {
	base       string
	pieceBytes int64
	c          Creator

	mu     sync.RWMutex
	pieces []formats.File // nil until written
	size   int64
	closed bool
}

// MinPieceBytes is the smallest piece size accepted.
const MinPieceBytes = 1 << 20

// NewWriter returns a Writer for the set base.001, base.002, ... The first
// piece is created at once.
func NewWriter(base string, pieceBytes int64, c Creator) (*Writer, error) {
	if pieceBytes < MinPieceBytes {
		return nil, fmt.Errorf("%w: split piece size %d is below %d bytes", formats.ErrInvalidOption, pieceBytes, MinPieceBytes)
	}
	w := &Writer{base: base, pieceBytes: pieceBytes, c: c}
	if _, err := w.piece(0); err != nil {
		return nil, err
	}
	return w, nil
}

// piece returns piece i, creating it (and growing the list) when needed.
// The caller holds no lock.
func (w *Writer) piece(i int) (formats.File, error) {
	w.mu.RLock()
	if i < len(w.pieces) && w.pieces[i] != nil {
		f := w.pieces[i]
		w.mu.RUnlock()
		return f, nil
	}
	w.mu.RUnlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	if i >= MaxPieces {
		return nil, fmt.Errorf("%s: %w: more than %d pieces of %d bytes", w.base, formats.ErrLimit, MaxPieces, w.pieceBytes)
	}
	for len(w.pieces) <= i {
		w.pieces = append(w.pieces, nil)
	}
	if w.pieces[i] == nil {
		f, err := w.c.Create(PieceName(w.base, i))
		if err != nil {
			return nil, err
		}
		w.pieces[i] = f
	}
	return w.pieces[i], nil
}

// WriteAt writes across pieces, creating them as needed.
func (w *Writer) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%s: negative offset %d", w.base, off)
	}
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		i := int(pos / w.pieceBytes)
		n := int(min(int64(len(p)-done), int64(i+1)*w.pieceBytes-pos))
		f, err := w.piece(i)
		if err != nil {
			return done, err
		}
		got, err := f.WriteAt(p[done:done+n], pos-int64(i)*w.pieceBytes)
		done += got
		if err != nil {
			return done, err
		}
	}
	w.mu.Lock()
	w.size = max(w.size, off+int64(len(p)))
	w.mu.Unlock()
	return done, nil
}

// ReadAt reads back what was written; unwritten ranges read as zeros.
func (w *Writer) ReadAt(p []byte, off int64) (int, error) {
	w.mu.RLock()
	size := w.size
	pieces := w.pieces
	w.mu.RUnlock()
	n, eof := imageio.ClipRead(p, off, size)
	for done := 0; done < n; {
		pos := off + int64(done)
		i := int(pos / w.pieceBytes)
		k := int(min(int64(n-done), int64(i+1)*w.pieceBytes-pos))
		chunk := p[done : done+k]
		got := 0
		if i < len(pieces) && pieces[i] != nil {
			var err error
			got, err = pieces[i].ReadAt(chunk, pos-int64(i)*w.pieceBytes)
			if err != nil && err != io.EOF {
				return done + got, err
			}
		}
		clear(chunk[got:])
		done += k
	}
	return n, eof
}

func (w *Writer) Size() (int64, error) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.size, nil
}

// Truncate sets the size; pieces past it are emptied (and dropped on Close).
func (w *Writer) Truncate(size int64) error {
	if size < 0 {
		return fmt.Errorf("%s: negative size", w.base)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.size = size
	for i, f := range w.pieces {
		start := int64(i) * w.pieceBytes
		if f == nil || start+w.pieceBytes <= size {
			continue
		}
		if err := f.Truncate(max(0, size-start)); err != nil {
			return err
		}
	}
	return nil
}

func (w *Writer) Sync() error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	for _, f := range w.pieces {
		if f != nil {
			if err := formats.Sync(f); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *Writer) Name() string { return w.base }

// Close gives every piece its final size (creating the ones never written,
// as holes), drops pieces past the end, writes the manifest and closes.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	size := w.size
	w.mu.Unlock()
	count := max(1, int((size+w.pieceBytes-1)/w.pieceBytes))
	m := &manifest{size: size, pieceBytes: w.pieceBytes}
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	for i := 0; i < count && first == nil; i++ {
		f, err := w.piece(i)
		if err != nil {
			keep(err)
			break
		}
		pieceSize := min(w.pieceBytes, size-int64(i)*w.pieceBytes)
		keep(f.Truncate(pieceSize))
		fp, err := fingerprint(f, pieceSize)
		keep(err)
		m.pieces = append(m.pieces, pieceInfo{name: filepath.Base(PieceName(w.base, i)), size: pieceSize, fingerprint: fp})
	}
	for i, f := range w.pieces {
		if f == nil {
			continue
		}
		keep(f.Close())
		if i >= count {
			w.c.Discard(PieceName(w.base, i))
		}
	}
	if first != nil {
		return first
	}
	mf, err := w.c.Create(w.base + manifestSuffix)
	if err != nil {
		return err
	}
	var b manifestBuffer
	m.WriteTo(&b)
	if _, err := mf.WriteAt(b.data, 0); err != nil {
		mf.Close()
		return err
	}
	return mf.Close()
}

type manifestBuffer struct{ data []byte }

func (b *manifestBuffer) Write(p []byte) (int, error) {
	b.data = append(b.data, p...)
	return len(p), nil
}
