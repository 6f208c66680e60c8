package iso

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode/utf16"
)

// CreateOptions control Create. The zero value makes a plain ISO 9660
// image labelled "CDROM" with the current time.
type CreateOptions struct {
	VolumeID      string // the label (32 bytes at most); default "CDROM"
	SystemID      string
	PublisherID   string
	PreparerID    string
	ApplicationID string // default "VDISK"
	Joliet        bool   // add a Joliet tree (UCS-2 names up to 64 characters)
	RockRidge     bool   // add Rock Ridge entries (POSIX names, modes, times, symlinks)
	// SourceDateEpoch, when set, is used for every timestamp (volume dates
	// and all file dates), so the same tree gives the same bytes.
	SourceDateEpoch *time.Time
	// Boot, when set, adds an El Torito boot catalog.
	Boot *BootOptions
}

// Layout limits of the writer.
const (
	maxExtentBytes  = 0xFFFFF800 // one extent: 4 GiB - 2048 (then multi-extent)
	maxPathTableDir = 65535      // directories a path table can number
	isoNameMax      = 30         // level 2: name + "." + extension
	jolietNameMax   = 64         // UCS-2 characters
	rrNameMax       = 255
	rrLinkMax       = 1024
)

// node is one file or directory of the tree being written.
type node struct {
	name     string // on-disk name (Rock Ridge NM)
	src      string // io/fs name in the source FS ("." for the root)
	mode     fs.FileMode
	size     int64
	mtime    time.Time
	link     string
	parent   *node
	kids     []*node
	isoID    []byte // primary identifier
	jolietID []byte // Joliet identifier (UCS-2 BE)

	// layout
	lba           [2]uint32 // directory extent per tree (0 primary, 1 Joliet); file data
	dirBytes      [2]int64
	number        [2]int // directory number in the path table (1-based)
	su            []byte // Rock Ridge entries written in the record
	ce            []byte // Rock Ridge entries in the continuation area
	ceOff         int64  // where ce goes (byte offset in the image)
	dotSU, dotdot []byte // Rock Ridge of "." and ".."
	dotCE         []byte
	dotCEOff      int64
}

func (n *node) isDir() bool { return n.mode.IsDir() }

// Create writes an ISO 9660 image of the tree src (os.DirFS, embed.FS,
// fstest.MapFS, another image's FS, ...) to w, in one sequential pass (w may
// be a pipe). Symbolic links are stored as links when src implements
// fs.ReadLinkFS. ctx is checked before every read of file data: a
// cancelled Create returns ctx's error with w holding a partial image.
func Create(ctx context.Context, w io.Writer, src fs.FS, opts CreateOptions) error {
	return create(ctx, w, src, opts, maxExtentBytes)
}

func create(ctx context.Context, w io.Writer, src fs.FS, opts CreateOptions, extentBytes int64) error {
	b, err := newBuilder(ctx, src, "", opts, extentBytes)
	if err != nil {
		return err
	}
	return b.write(w)
}

// CreateFile writes an image of the directory srcDir to path through a
// temporary file renamed into place when complete; a failed or cancelled
// CreateFile leaves nothing at path.
func CreateFile(ctx context.Context, path, srcDir string, opts CreateOptions) (err error) {
	st, err := os.Stat(srcDir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s: not a directory", srcDir)
	}
	b, err := newBuilder(ctx, os.DirFS(srcDir), srcDir, opts, maxExtentBytes)
	if err != nil {
		return err
	}
	// The temporary file is made after the tree is read, so that an
	// output inside the tree is not part of it.
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = b.write(tmp); err != nil {
		return err
	}
	if err = tmp.Chmod(0o644); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

type builder struct {
	ctx     context.Context
	fsys    fs.FS
	label   string // the source as messages name it (a directory, or "")
	opts    CreateOptions
	now     time.Time
	root    *node
	dirs    []*node    // breadth-first, path table order
	files   []*node    // regular files in data order
	trees   int        // 1, or 2 with Joliet
	order   [2][]*node // directories per tree in path table order
	ptBytes [2]int64
	ptLBA   [2][2]uint32 // [tree][L, M]
	ceLBA   uint32
	ceBytes int64
	blocks  uint32      // volume size
	boot    *bootLayout // nil without El Torito
	// extentBytes is the largest extent of one record (maxExtentBytes;
	// tests lower it to exercise multi-extent files).
	extentBytes int64
}

func newBuilder(ctx context.Context, fsys fs.FS, label string, opts CreateOptions, extentBytes int64) (*builder, error) {
	b := &builder{ctx: ctx, fsys: fsys, label: label, opts: opts,
		now: time.Now().UTC().Truncate(time.Second), trees: 1, extentBytes: extentBytes}
	if opts.SourceDateEpoch != nil {
		b.now = opts.SourceDateEpoch.UTC()
	}
	if opts.Joliet {
		b.trees = 2
	}
	if b.opts.VolumeID == "" {
		b.opts.VolumeID = "CDROM"
	}
	if b.opts.ApplicationID == "" {
		b.opts.ApplicationID = "VDISK"
	}
	st, err := fs.Stat(fsys, ".")
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s: not a directory", b.where("."))
	}
	b.root = &node{name: "", src: ".", mode: st.Mode(), mtime: b.fileTime(st)}
	if err := b.scan(b.root, 0); err != nil {
		return nil, err
	}
	b.nameTree(b.root)
	if err := b.orderDirs(); err != nil {
		return nil, err
	}
	if err := b.prepareBoot(); err != nil {
		return nil, err
	}
	b.layout()
	return b, nil
}

func (b *builder) fileTime(st fs.FileInfo) time.Time {
	if b.opts.SourceDateEpoch != nil || st.ModTime().Year() < 1900 {
		return b.now // also for sources without times (fstest.MapFS)
	}
	return st.ModTime().UTC().Truncate(time.Second)
}

// where names a source entry in messages: the path below the source
// directory, or the io/fs name.
func (b *builder) where(name string) string {
	if b.label == "" {
		return name
	}
	return filepath.Join(b.label, filepath.FromSlash(name))
}

// scan reads the source tree.
func (b *builder) scan(dir *node, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("%s: nested deeper than %d", b.where(dir.src), maxDepth)
	}
	if err := b.ctx.Err(); err != nil {
		return err
	}
	ents, err := fs.ReadDir(b.fsys, dir.src)
	if err != nil {
		return err
	}
	for _, de := range ents {
		src := path.Join(dir.src, de.Name())
		st, err := fs.Lstat(b.fsys, src)
		if err != nil {
			return err
		}
		if len(de.Name()) > rrNameMax {
			return fmt.Errorf("%s: name longer than %d bytes", b.where(src), rrNameMax)
		}
		n := &node{name: de.Name(), src: src, mode: st.Mode(), mtime: b.fileTime(st), parent: dir}
		switch {
		case st.IsDir():
			if err := b.scan(n, depth+1); err != nil {
				return err
			}
		case st.Mode()&fs.ModeSymlink != 0:
			if n.link, err = fs.ReadLink(b.fsys, src); err != nil {
				return err
			}
			if len(n.link) > rrLinkMax {
				return fmt.Errorf("%s: symlink target longer than %d bytes", b.where(src), rrLinkMax)
			}
		case st.Mode().IsRegular():
			n.size = st.Size()
			b.files = append(b.files, n)
		default:
			return fmt.Errorf("%s: %v files cannot be stored in an ISO image", b.where(src), st.Mode().Type())
		}
		dir.kids = append(dir.kids, n)
	}
	return nil
}

// nameTree gives every entry its ISO 9660 and Joliet identifiers, unique in
// its directory, and sorts directories by ISO identifier.
func (b *builder) nameTree(dir *node) {
	seenISO, seenJ := map[string]bool{}, map[string]bool{}
	for _, k := range dir.kids {
		k.isoID = uniqueID(isoIdentifier(k.name, k.isDir()), seenISO, k.isDir(), false)
		if b.opts.Joliet {
			k.jolietID = uniqueID(jolietIdentifier(k.name, k.isDir()), seenJ, k.isDir(), true)
		}
		if k.isDir() {
			b.nameTree(k)
		}
	}
	slices.SortFunc(dir.kids, func(x, y *node) int { return cmp.Compare(string(x.isoID), string(y.isoID)) })
}

// isoIdentifier maps a name to ISO 9660 level 2 d-characters: upper case,
// other characters as "_", name and extension within 30 bytes, ";1" on
// files.
func isoIdentifier(name string, dir bool) []byte {
	mapChars := func(s string) string {
		var sb strings.Builder
		for _, r := range strings.ToUpper(s) {
			if r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
				sb.WriteRune(r)
			} else {
				sb.WriteByte('_')
			}
		}
		return sb.String()
	}
	if dir {
		s := mapChars(name)
		return []byte(s[:min(len(s), isoNameMax+1)])
	}
	base, ext := name, ""
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		base, ext = name[:i], name[i+1:]
	}
	base, ext = mapChars(base), mapChars(ext)
	ext = ext[:min(len(ext), 10)]
	base = base[:min(len(base), isoNameMax-len(ext))]
	return []byte(base + "." + ext + ";1")
}

// jolietIdentifier maps a name to UCS-2 big-endian, at most 64 characters,
// with the characters Joliet forbids replaced by "_".
func jolietIdentifier(name string, dir bool) []byte {
	var units []uint16
	for _, r := range name {
		if strings.ContainsRune("*/:;?\\", r) || r < 0x20 {
			r = '_'
		}
		units = utf16.AppendRune(units, r)
	}
	if len(units) > jolietNameMax {
		units = units[:jolietNameMax]
		if utf16.IsSurrogate(rune(units[jolietNameMax-1])) {
			units = units[:jolietNameMax-1]
		}
	}
	if !dir {
		units = append(units, ';', '1')
	}
	return ucs2Bytes(units)
}

// uniqueID makes id unique among seen by replacing its end with "~N" (in
// the identifier's own encoding).
func uniqueID(id []byte, seen map[string]bool, dir, ucs2 bool) []byte {
	key := func(x []byte) string {
		if ucs2 {
			return strings.ToLower(string(x)) // Joliet readers are case-insensitive
		}
		return string(x)
	}
	if !seen[key(id)] {
		seen[key(id)] = true
		return id
	}
	for i := 1; ; i++ {
		tag := fmt.Sprintf("~%d", i)
		var cand []byte
		if ucs2 {
			cand = ucs2Suffix(id, tag, dir)
		} else {
			cand = asciiSuffix(id, tag, dir)
		}
		if !seen[key(cand)] {
			seen[key(cand)] = true
			return cand
		}
	}
}

func asciiSuffix(id []byte, tag string, dir bool) []byte {
	s := string(id)
	if dir {
		return []byte(s[:max(0, min(len(s), isoNameMax+1-len(tag)))] + tag)
	}
	s = strings.TrimSuffix(s, ";1")
	base, ext, _ := strings.Cut(s, ".")
	base = base[:max(0, min(len(base), isoNameMax-len(ext)-len(tag)))]
	return []byte(base + tag + "." + ext + ";1")
}

func ucs2Suffix(id []byte, tag string, dir bool) []byte {
	units := ucs2Units(id)
	if !dir {
		units = units[:len(units)-2]
	}
	keep := max(0, min(len(units), jolietNameMax-len(tag)))
	units = append(units[:keep:keep], utf16.Encode([]rune(tag))...)
	if !dir {
		units = append(units, ';', '1')
	}
	return ucs2Bytes(units)
}

// orderDirs numbers directories breadth-first (the path table order: by
// level, then parent number, then identifier).
func (b *builder) orderDirs() error {
	b.dirs = []*node{b.root}
	for i := 0; i < len(b.dirs); i++ {
		for _, k := range b.dirs[i].kids {
			if k.isDir() {
				b.dirs = append(b.dirs, k)
			}
		}
	}
	if len(b.dirs) > maxPathTableDir {
		return fmt.Errorf("%d directories: an ISO path table numbers at most %d", len(b.dirs), maxPathTableDir)
	}
	for t := 0; t < b.trees; t++ {
		order := slices.Clone(b.dirs)
		if t == 1 { // Joliet: same levels and parents, sorted by Joliet identifier
			order = b.jolietOrder()
		}
		for i, d := range order {
			d.number[t] = i + 1
		}
		b.order[t] = order
		b.ptBytes[t] = int64(len(b.pathTable(t, false)))
	}
	// File data follows the primary tree's order, directory by directory.
	b.files = b.files[:0]
	for _, d := range b.dirs {
		for _, k := range d.kids {
			if k.mode.IsRegular() {
				b.files = append(b.files, k)
			}
		}
	}
	return nil
}

func (b *builder) jolietOrder() []*node {
	order := []*node{b.root}
	for i := 0; i < len(order); i++ {
		var sub []*node
		for _, k := range order[i].kids {
			if k.isDir() {
				sub = append(sub, k)
			}
		}
		slices.SortFunc(sub, func(x, y *node) int { return cmp.Compare(string(x.jolietID), string(y.jolietID)) })
		order = append(order, sub...)
	}
	return order
}

// pathTable renders tree t's path table, type L (little-endian) or M.
func (b *builder) pathTable(t int, bigEndian bool) []byte {
	var out []byte
	for _, d := range b.order[t] {
		id := []byte{0}
		parent := 1
		if d != b.root {
			id = d.id(t)
			parent = d.parent.number[t]
		}
		e := make([]byte, 8+len(id)+len(id)%2)
		e[0] = byte(len(id))
		if bigEndian {
			binary.BigEndian.PutUint32(e[2:], d.lba[t])
			binary.BigEndian.PutUint16(e[6:], uint16(parent))
		} else {
			binary.LittleEndian.PutUint32(e[2:], d.lba[t])
			binary.LittleEndian.PutUint16(e[6:], uint16(parent))
		}
		copy(e[8:], id)
		out = append(out, e...)
	}
	return out
}

func (n *node) id(t int) []byte {
	if t == 1 {
		return n.jolietID
	}
	return n.isoID
}
