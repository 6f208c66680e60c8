package archive

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/vdiskio/vdisk/formats"
)

// Kind names what an archive is, from its content.
type Kind string

// The kinds recognised.
const (
	KindOVA Kind = "ova"         // an OVF package: the descriptor is the first member
	KindBox Kind = "vagrant-box" // a Vagrant box: metadata.json with box.ovf or box.img
	KindGCE Kind = "gce"         // a Google Compute Engine image: disk.raw
	KindTar Kind = "tar"         // any other tar archive
)

// Disk is a disk image an archive holds.
type Disk struct {
	Number int    // 1-based, the --disk number
	Member string // the member holding it
	ID     string // the OVF ovf:diskId ("" outside an OVF)
	Format string // the OVF ovf:format URI ("" outside an OVF)
	// CapacityBytes is the OVF's capacity; -1 when not given.
	CapacityBytes int64
}

// Archive is a tar archive indexed in place.
type Archive struct {
	Name       string // the archive's name in messages
	Kind       Kind
	Members    []Member
	Descriptor string    // the OVF member ("" when none)
	OVF        *Envelope // the parsed descriptor, nil when none
	Provider   string    // a Vagrant box's metadata.json provider
	Disks      []Disk    // the disks, in the OVF's order
}

// maxMetadataJSON bounds a Vagrant box's metadata.json.
const maxMetadataJSON = 1 << 20

// Read indexes the tar archive r of size bytes and finds its disks.
func Read(r io.ReaderAt, size int64, name string, lim Limits) (*Archive, error) {
	members, err := Index(r, size, name, lim)
	if err != nil {
		return nil, err
	}
	a := &Archive{Name: name, Kind: KindTar, Members: members}
	if err := a.classify(r); err != nil {
		return nil, err
	}
	return a, nil
}

// Find returns the regular member called name (compared cleaned), or nil.
// A name that occurs twice is the later member, as tar extracts it.
func (a *Archive) Find(name string) *Member {
	name = CleanName(name)
	var found *Member
	for i := range a.Members {
		if a.Members[i].Name == name && a.Members[i].Regular() {
			found = &a.Members[i]
		}
	}
	return found
}

// classify sets Kind, the descriptor and the disks.
func (a *Archive) classify(r io.ReaderAt) error {
	var first *Member
	for i := range a.Members {
		if a.Members[i].Regular() {
			first = &a.Members[i]
			break
		}
	}
	meta := a.Find("metadata.json")
	if meta != nil {
		a.Kind = KindBox
		a.Provider = a.provider(r, meta)
	}
	var ovf *Member
	if meta != nil {
		ovf = a.Find("box.ovf")
	}
	if ovf == nil && first != nil && strings.HasSuffix(strings.ToLower(first.Name), ".ovf") {
		ovf = first
		if meta == nil {
			a.Kind = KindOVA
		}
	}
	switch {
	case ovf != nil:
		return a.readOVF(r, ovf)
	case meta != nil && a.Find("box.img") != nil:
		a.Disks = []Disk{{Number: 1, Member: "box.img", CapacityBytes: -1}}
	case a.Find("disk.raw") != nil:
		if meta == nil {
			a.Kind = KindGCE
		}
		a.Disks = []Disk{{Number: 1, Member: "disk.raw", CapacityBytes: -1}}
	}
	return nil
}

// provider reads metadata.json's "provider" ("" when unreadable: the box
// is still read by its members).
func (a *Archive) provider(r io.ReaderAt, m *Member) string {
	if m.Size > maxMetadataJSON {
		return ""
	}
	buf := make([]byte, m.Size)
	if _, err := NewMemberFile(nopFile{r}, *m, a.Name, false).ReadAt(buf, 0); err != nil && !errors.Is(err, io.EOF) {
		return ""
	}
	var meta struct {
		Provider string `json:"provider"`
	}
	if json.Unmarshal(buf, &meta) != nil {
		return ""
	}
	return meta.Provider
}

// readOVF parses the descriptor m and lists its disks.
func (a *Archive) readOVF(r io.ReaderAt, m *Member) error {
	where := a.Name + "/" + m.Name
	if m.Size > MaxOVFBytes {
		return formats.Limitf(where, "OVF descriptor", m.DataOff, "%d bytes (limit %d)", m.Size, MaxOVFBytes)
	}
	buf := make([]byte, m.Size)
	if _, err := NewMemberFile(nopFile{r}, *m, where, false).ReadAt(buf, 0); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	env, err := ParseOVF(buf, where)
	if err != nil {
		return err
	}
	a.Descriptor, a.OVF = m.Name, env
	files := map[string]OVFFile{}
	for _, f := range env.Files {
		files[f.ID] = f
	}
	for _, d := range env.Disks {
		if d.FileRef == "" {
			continue // a blank disk the VM creates: nothing to read
		}
		f, ok := files[d.FileRef]
		if !ok {
			return formats.Corruptf(where, "OVF DiskSection", -1, "%s names file %q, which References does not list", d.describe(), d.FileRef)
		}
		if why := ValidHref(f.Href); why != "" {
			return fmt.Errorf("%s: OVF References: File %q: ovf:href %q is %s: %w", where, f.ID, f.Href, why, formats.ErrReferenceDenied)
		}
		if f.ChunkSize > 0 {
			return formats.Unsupportedf(where, "File %q is split into ovf:chunkSize chunks", f.ID)
		}
		if f.Compression != "" && f.Compression != "identity" {
			return formats.Unsupportedf(where, "File %q has ovf:compression=%q", f.ID, f.Compression)
		}
		member := a.Find(f.Href)
		if member == nil {
			return fmt.Errorf("%s: OVF References: File %q: ovf:href %q is not a member of the archive (vdisk reads only files inside it): %w",
				where, f.ID, f.Href, formats.ErrReferenceDenied)
		}
		a.Disks = append(a.Disks, Disk{Number: len(a.Disks) + 1, Member: member.Name, ID: d.DiskID, Format: d.Format, CapacityBytes: d.CapacityBytes})
	}
	return nil
}

// Choose picks the member to read: member by name, or disk number disk
// (1-based), or by default the first disk (the OVF's first, box.img,
// disk.raw) or the only regular member.
func (a *Archive) Choose(disk int, member string) (*Member, error) {
	switch {
	case member != "" && disk > 0:
		return nil, fmt.Errorf("%s: give either a member name or a disk number, not both", a.Name)
	case member != "":
		m := a.Find(member)
		if m == nil {
			return nil, fmt.Errorf("%s: no member %q in the archive (%s)", a.Name, member, a.memberList())
		}
		return m, nil
	case disk > 0:
		if disk > len(a.Disks) {
			return nil, fmt.Errorf("%s: no disk %d: the %s holds %d disk(s)%s", a.Name, disk, a.Kind, len(a.Disks), a.diskList())
		}
		return a.Find(a.Disks[disk-1].Member), nil
	case len(a.Disks) > 0:
		return a.Find(a.Disks[0].Member), nil
	}
	var regular []*Member
	for i := range a.Members {
		if a.Members[i].Regular() {
			regular = append(regular, &a.Members[i])
		}
	}
	switch {
	case len(regular) == 1:
		return regular[0], nil
	case len(regular) == 0:
		return nil, fmt.Errorf("%s: a tar archive with no file in it", a.Name)
	}
	return nil, fmt.Errorf("%s: a tar archive of %d files and no disk it can tell; name one with --member (%s)", a.Name, len(regular), a.memberList())
}

// memberList names the regular members (the first few).
func (a *Archive) memberList() string {
	var names []string
	for _, m := range a.Members {
		if m.Regular() {
			names = append(names, fmt.Sprintf("%q", m.Name))
		}
	}
	if len(names) > 8 {
		names = append(names[:8], fmt.Sprintf("and %d more", len(names)-8))
	}
	if len(names) == 0 {
		return "no files"
	}
	return "members: " + strings.Join(names, ", ")
}

func (a *Archive) diskList() string {
	var s []string
	for _, d := range a.Disks {
		s = append(s, fmt.Sprintf("%d: %s", d.Number, d.Member))
	}
	if s == nil {
		return ""
	}
	return " (" + strings.Join(s, ", ") + ")"
}

// nopFile reads an io.ReaderAt as a read-only formats.File.
type nopFile struct{ io.ReaderAt }

func (nopFile) WriteAt([]byte, int64) (int, error) { return 0, formats.ErrReadOnly }
func (nopFile) Size() (int64, error)               { return 0, formats.ErrUnsupported }
func (nopFile) Truncate(int64) error               { return formats.ErrReadOnly }
func (nopFile) Close() error                       { return nil }
func (nopFile) Name() string                       { return "" }

// Opener opens paths for formats.OpenOptions.OpenFile: a tar archive
// opens as the member Choose picks, anything else as Open returns it.
type Opener struct {
	// Open opens a path (a compressed file's spool, an OS file...); nil
	// means formats.OpenOSFile.
	Open func(path string, writable bool) (formats.File, error)
	// Disk and Member choose the member, as Archive.Choose.
	Disk   int
	Member string
	Limits Limits
	// OnOpen, when set, hears of each archive opened and the member read.
	OnOpen func(path string, a *Archive, m Member)
}

// OpenPath opens path; a tar archive (by content: a ustar or GNU header
// at offset 0) opens as its chosen member, read-only, named PATH/MEMBER.
func (o *Opener) OpenPath(path string, writable bool) (formats.File, error) {
	open := o.Open
	if open == nil {
		open = formats.OpenOSFile
	}
	f, err := open(path, writable)
	if err != nil {
		return nil, err
	}
	head := make([]byte, blockBytes)
	n, err := f.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if !IsTar(head[:n]) {
		return f, nil
	}
	m, a, err := o.choose(f, path, writable)
	if err != nil {
		f.Close()
		return nil, err
	}
	if o.OnOpen != nil {
		o.OnOpen(path, a, *m)
	}
	return NewMemberFile(f, *m, path+"/"+m.Name, true), nil
}

func (o *Opener) choose(f formats.File, path string, writable bool) (*Member, *Archive, error) {
	if writable {
		return nil, nil, fmt.Errorf("%s: %w: a tar archive's member is read-only (convert it to a new image)", path, formats.ErrReadOnly)
	}
	size, err := f.Size()
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	a, err := Read(f, size, path, o.Limits)
	if err != nil {
		return nil, nil, err
	}
	m, err := a.Choose(o.Disk, o.Member)
	if err != nil {
		return nil, nil, err
	}
	return m, a, nil
}
