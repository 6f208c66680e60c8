package archive

import (
	"fmt"
	"io"
	"sort"

	"github.com/vdiskio/vdisk/formats"
)

// MemberFile is a member of an archive read in place: a read-only
// formats.File of the member's logical size. A sparse member's holes read
// as zeros and are reported by Runs, so a raw disk inside converts
// sparsely; a member stored whole reports the holes of the archive file
// under it (a spool of a gzip'd tar is sparse).
type MemberFile struct {
	base   formats.File // the archive
	m      Member
	name   string
	closer io.Closer // closes base; nil when the caller keeps it
	// before[i] is where fragment i's data starts, relative to DataOff.
	before []int64
}

// NewMemberFile reads m of the archive base; name is the file's name in
// messages and for its references (ARCHIVE/MEMBER: references inside an
// archive member never resolve to files beside the archive). Closing it
// closes base when own is set.
func NewMemberFile(base formats.File, m Member, name string, own bool) *MemberFile {
	f := &MemberFile{base: base, m: m, name: name}
	if m.Fragments != nil {
		f.before = make([]int64, len(m.Fragments))
		var s int64
		for i, fr := range m.Fragments {
			f.before[i] = s
			s += fr.Length
		}
	}
	if own {
		f.closer = base
	}
	return f
}

// Member describes the member read.
func (f *MemberFile) Member() Member { return f.m }

// Name is ARCHIVE/MEMBER.
func (f *MemberFile) Name() string { return f.name }

// Size is the member's logical size.
func (f *MemberFile) Size() (int64, error) { return f.m.Size, nil }

// WriteAt refuses: an archive member is read-only.
func (f *MemberFile) WriteAt([]byte, int64) (int, error) {
	return 0, fmt.Errorf("%s: %w: an archive member is read-only (convert it to a new image)", f.name, formats.ErrReadOnly)
}

// Truncate refuses: an archive member is read-only.
func (f *MemberFile) Truncate(int64) error {
	return fmt.Errorf("%s: %w: an archive member is read-only", f.name, formats.ErrReadOnly)
}

// Close closes the archive when the member owns it.
func (f *MemberFile) Close() error {
	if f.closer != nil {
		return f.closer.Close()
	}
	return nil
}

// ReadAt reads the member's bytes at off.
func (f *MemberFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%s: negative offset %d", f.name, off)
	}
	if off >= f.m.Size {
		return 0, io.EOF
	}
	want := p
	if int64(len(p)) > f.m.Size-off {
		want = p[:f.m.Size-off]
	}
	var err error
	if f.m.Fragments == nil {
		err = f.readStored(want, f.m.DataOff+off)
	} else {
		err = f.readSparse(want, off)
	}
	if err != nil {
		return 0, err
	}
	if len(want) < len(p) {
		return len(want), io.EOF
	}
	return len(p), nil
}

// readStored reads exactly len(p) stored bytes at archive offset at.
func (f *MemberFile) readStored(p []byte, at int64) error {
	n, err := f.base.ReadAt(p, at)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%s: reading the member at archive offset %d: %w", f.name, at, err)
}

// readSparse fills p with the logical bytes at off: fragments from the
// archive, zeros between them.
func (f *MemberFile) readSparse(p []byte, off int64) error {
	frags := f.m.Fragments
	// The first fragment that ends after off.
	i := sort.Search(len(frags), func(i int) bool { return frags[i].Offset+frags[i].Length > off })
	stored := f.storedOffset(i)
	pos := int64(0)
	for pos < int64(len(p)) {
		cur := off + pos
		if i >= len(frags) || frags[i].Offset >= off+int64(len(p)) {
			clear(p[pos:])
			return nil
		}
		fr := frags[i]
		if cur < fr.Offset {
			gap := fr.Offset - cur
			clear(p[pos : pos+gap])
			pos += gap
			continue
		}
		n := min(fr.Offset+fr.Length-cur, int64(len(p))-pos)
		if err := f.readStored(p[pos:pos+n], f.m.DataOff+stored+(cur-fr.Offset)); err != nil {
			return err
		}
		pos += n
		stored += fr.Length
		i++
	}
	return nil
}

// storedOffset is where fragment i's data starts, relative to DataOff.
func (f *MemberFile) storedOffset(i int) int64 {
	if i < len(f.before) {
		return f.before[i]
	}
	return f.m.StoredSize
}

// Runs reports the member's data and holes in [off, off+length).
func (f *MemberFile) Runs(off, length int64) ([]formats.FileRun, error) {
	if off < 0 || length < 0 || off > f.m.Size {
		return nil, fmt.Errorf("%s: runs of [%d, +%d) outside the member (%d bytes)", f.name, off, length, f.m.Size)
	}
	end := min(off+length, f.m.Size)
	if f.m.Fragments == nil {
		return f.storedRuns(off, end)
	}
	var runs []formats.FileRun
	add := func(o, e int64, hole bool) {
		o, e = max(o, off), min(e, end)
		if o >= e {
			return
		}
		if n := len(runs); n > 0 && runs[n-1].Hole == hole && runs[n-1].Offset+runs[n-1].Length == o {
			runs[n-1].Length += e - o
			return
		}
		runs = append(runs, formats.FileRun{Offset: o, Length: e - o, Hole: hole})
	}
	pos := int64(0)
	for _, fr := range f.m.Fragments {
		if pos >= end {
			break
		}
		add(pos, fr.Offset, true)
		add(fr.Offset, fr.Offset+fr.Length, false)
		pos = fr.Offset + fr.Length
	}
	add(pos, end, true)
	return runs, nil
}

// storedRuns maps the archive file's holes under a member stored whole.
func (f *MemberFile) storedRuns(off, end int64) ([]formats.FileRun, error) {
	if off >= end {
		return nil, nil
	}
	h, ok := f.base.(formats.HoleFinder)
	if !ok {
		return []formats.FileRun{{Offset: off, Length: end - off}}, nil
	}
	runs, err := h.Runs(f.m.DataOff+off, end-off)
	if err != nil {
		return nil, err
	}
	for i := range runs {
		runs[i].Offset -= f.m.DataOff
	}
	return runs, nil
}
