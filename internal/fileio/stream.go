package fileio

import (
	"fmt"
	"io"

	"github.com/vdiskio/vdisk/formats"
)

// Stream is a formats.File over an io.Writer (a pipe, stdout) for targets
// written in one sequential pass. WriteAt must come in increasing offset
// order; a gap before the next write is filled with zeros. Truncate may only
// extend (padding with zeros). Reads are refused.
type Stream struct {
	w    io.Writer
	name string
	pos  int64
}

// NewStream returns a Stream writing to w.
func NewStream(w io.Writer, name string) *Stream { return &Stream{w: w, name: name} }

func (s *Stream) ReadAt(p []byte, off int64) (int, error) {
	return 0, fmt.Errorf("%s: cannot read back a sequential output stream: %w", s.name, formats.ErrUnsupported)
}

func (s *Stream) WriteAt(p []byte, off int64) (int, error) {
	if off < s.pos {
		return 0, fmt.Errorf("%s: stream write at %d after %d: output must be written in order: %w",
			s.name, off, s.pos, formats.ErrUnsupported)
	}
	if err := s.pad(off); err != nil {
		return 0, err
	}
	n, err := s.w.Write(p)
	s.pos += int64(n)
	return n, err
}

func (s *Stream) pad(to int64) error {
	var zero [64 << 10]byte
	for s.pos < to {
		n := min(to-s.pos, int64(len(zero)))
		m, err := s.w.Write(zero[:n])
		s.pos += int64(m)
		if err != nil {
			return err
		}
	}
	return nil
}

// Size is the number of bytes written so far.
func (s *Stream) Size() (int64, error) { return s.pos, nil }

// Truncate extends the stream with zeros; it cannot shrink.
func (s *Stream) Truncate(size int64) error {
	if size < s.pos {
		return fmt.Errorf("%s: cannot shrink a stream: %w", s.name, formats.ErrUnsupported)
	}
	return s.pad(size)
}

func (s *Stream) Close() error { return nil }
func (s *Stream) Name() string { return s.name }

// Sequential is true: a Stream is a formats.SequentialFile.
func (s *Stream) Sequential() bool { return true }
