package split

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/imageio"
	"github.com/vdiskio/vdisk/internal/readonly"
)

// Set is a split set opened read-only as one formats.File.
type Set struct {
	readonly.File // Name, and writes refused
	pieces        []formats.File
	starts        []int64 // offset of each piece in the set
	size          int64
}

// firstPieceSuffix is the suffix of a set's first piece.
const firstPieceSuffix = ".001"

// OpenPath opens path as a File: a split set when path is a manifest
// (NAME.split starting with the manifest's first line) or the first piece
// of a set (NAME.001 beside NAME.002 or NAME.split), else the plain file
// (formats.OpenOSFile). Sets open read-only; a writable open of one is
// refused. It suits formats.OpenOptions.OpenFile.
func OpenPath(path string, writable bool) (formats.File, error) {
	if !isSet(path) {
		return formats.OpenOSFile(path, writable)
	}
	if writable {
		return nil, fmt.Errorf("%s: %w: a split set is read-only (convert it to a new image)", path, formats.ErrReadOnly)
	}
	return Open(path)
}

func isSet(path string) bool {
	if strings.HasSuffix(path, manifestSuffix) {
		return hasMagic(path)
	}
	if base, ok := strings.CutSuffix(path, firstPieceSuffix); ok {
		return exists(PieceName(base, 1)) || (exists(base+manifestSuffix) && hasMagic(base+manifestSuffix))
	}
	return false
}

func exists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

func hasMagic(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	buf := make([]byte, len(manifestMagic)+1)
	n, _ := io.ReadFull(f, buf)
	return n == len(buf) && string(buf) == manifestMagic+"\n"
}

// Open opens the split set whose first piece or manifest is path.
func Open(path string) (*Set, error) {
	var base, manifestPath string
	switch {
	case strings.HasSuffix(path, manifestSuffix):
		base, manifestPath = strings.TrimSuffix(path, manifestSuffix), path
	case strings.HasSuffix(path, firstPieceSuffix):
		base = strings.TrimSuffix(path, firstPieceSuffix)
		if exists(base + manifestSuffix) {
			manifestPath = base + manifestSuffix
		}
	default:
		return nil, fmt.Errorf("%s: not a split set (open its first piece NAME%s or its manifest NAME%s)", path, firstPieceSuffix, manifestSuffix)
	}
	s := &Set{File: readonly.New(path, "a split set is read-only")}
	var err error
	if manifestPath != "" {
		err = s.openManifest(manifestPath, base)
	} else {
		err = s.openPieces(base)
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// openManifest opens the pieces a manifest lists, checking each one's size
// and fingerprint.
func (s *Set) openManifest(manifestPath, base string) error {
	f, err := os.Open(manifestPath)
	if err != nil {
		return err
	}
	m, err := parseManifest(f, manifestPath, filepath.Base(base))
	f.Close()
	if err != nil {
		return err
	}
	dir := filepath.Dir(base)
	for i, p := range m.pieces {
		path := filepath.Join(dir, p.name)
		pf, size, err := s.add(path, i == len(m.pieces)-1)
		if err != nil {
			return err
		}
		if size != p.size {
			return pieceError(path, "is %d bytes; the manifest %s says %d (a short, truncated or replaced piece)", size, manifestPath, p.size)
		}
		fp, err := fingerprint(pf, size)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if fp != p.fingerprint {
			return pieceError(path, "does not match the manifest %s (sampled bytes differ): pieces reordered, swapped or changed", manifestPath)
		}
	}
	if next := PieceName(base, len(m.pieces)); exists(next) {
		return pieceError(next, "exists, but the manifest %s lists %d pieces", manifestPath, len(m.pieces))
	}
	return nil
}

// openPieces opens base.001, base.002, ... while they exist; a higher
// numbered piece beyond a missing one, or a short piece before the last,
// is an error naming it.
func (s *Set) openPieces(base string) error {
	var pieceBytes int64
	for i := 0; ; i++ {
		path := PieceName(base, i)
		if !exists(path) {
			if later := laterPiece(base, i); later != "" {
				return pieceError(path, "is missing (%s exists)", later)
			}
			return nil
		}
		if i >= MaxPieces {
			return pieceError(path, "a set has at most %d pieces", MaxPieces)
		}
		_, size, err := s.add(path, false)
		if err != nil {
			return err
		}
		if i == 0 {
			pieceBytes = size
			if size == 0 {
				return pieceError(path, "is empty")
			}
		}
		if size > pieceBytes {
			return pieceError(path, "is %d bytes, longer than the first piece (%d): pieces reordered?", size, pieceBytes)
		}
		if i > 0 && s.starts[i]-s.starts[i-1] < pieceBytes {
			return pieceError(PieceName(base, i-1), "is %d bytes, but only the last piece may be shorter than %d", s.starts[i]-s.starts[i-1], pieceBytes)
		}
	}
}

// laterPiece returns an existing piece of base numbered after index, or "".
func laterPiece(base string, index int) string {
	matches, _ := filepath.Glob(base + ".[0-9][0-9][0-9]*")
	for _, m := range matches {
		num := strings.TrimPrefix(m, base+".")
		if n, err := strconv.Atoi(num); err == nil && n > index+1 && len(num) >= 3 && exists(m) {
			return m
		}
	}
	return ""
}

func pieceError(path, format string, args ...any) error {
	return &formats.Error{File: path, Offset: -1, Kind: formats.ErrCorrupt, Msg: "split set piece " + fmt.Sprintf(format, args...)}
}

// add opens a piece read-only and appends it.
func (s *Set) add(path string, _ bool) (formats.File, int64, error) {
	f, err := formats.OpenOSFile(path, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, pieceError(path, "is missing")
	}
	if err != nil {
		return nil, 0, err
	}
	size, err := f.Size()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	s.pieces = append(s.pieces, f)
	s.starts = append(s.starts, s.size)
	s.size += size
	return f, size, nil
}

// piece returns the index of the piece holding offset off (< size).
func (s *Set) piece(off int64) int {
	return sort.Search(len(s.starts), func(i int) bool { return s.starts[i] > off }) - 1
}

func (s *Set) end(i int) int64 {
	if i+1 < len(s.starts) {
		return s.starts[i+1]
	}
	return s.size
}

// ReadAt reads across pieces.
func (s *Set) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%s: negative offset %d", s.Name(), off)
	}
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		if pos >= s.size {
			return done, io.EOF
		}
		i := s.piece(pos)
		n := int(min(int64(len(p)-done), s.end(i)-pos))
		got, err := s.pieces[i].ReadAt(p[done:done+n], pos-s.starts[i])
		done += got
		if got < n {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return done, fmt.Errorf("%s: reading piece %s at offset %d: %w", s.Name(), s.pieces[i].Name(), pos-s.starts[i]+int64(got), err)
		}
	}
	return done, nil
}

// FileExtents reports the pieces' holes (formats.ExtentsFile), so a sparse
// raw set converts and hashes without reading them.
func (s *Set) FileExtents(off, length int64) ([]formats.Extent, error) {
	var out []formats.Extent
	for pos, end := off, min(off+length, s.size); pos < end; {
		i := s.piece(pos)
		n := min(end, s.end(i)) - pos
		exts, err := imageio.FileExtents(s.pieces[i], pos, pos-s.starts[i], n)
		if err != nil {
			return nil, err
		}
		for _, e := range exts {
			e.HostOffset = e.Offset
			out = imageio.AppendExtent(out, e)
		}
		pos += n
	}
	if rest := off + length - max(off, s.size); rest > 0 {
		out = append(out, formats.Extent{Offset: max(off, s.size), Length: rest, Kind: formats.Zero, HostOffset: max(off, s.size)})
	}
	return out, nil
}

// Pieces lists the piece paths in order.
func (s *Set) Pieces() []string {
	out := make([]string, len(s.pieces))
	for i, p := range s.pieces {
		out[i] = p.Name()
	}
	return out
}

func (s *Set) Size() (int64, error) { return s.size, nil }
func (s *Set) Sync() error          { return nil }

// Close closes every piece.
func (s *Set) Close() error {
	var first error
	for _, p := range s.pieces {
		if err := p.Close(); err != nil && first == nil {
			first = err
		}
	}
	s.pieces = nil
	return first
}
