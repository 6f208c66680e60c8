package fsys

import (
	"fmt"
	"io"
	"slices"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/fsys/ext4"
	"github.com/vdiskio/vdisk/fsys/fat"
	"github.com/vdiskio/vdisk/fsys/fsnode"
	"github.com/vdiskio/vdisk/fsys/ntfs"
	"github.com/vdiskio/vdisk/internal/imageio"
	"github.com/vdiskio/vdisk/partition"
)

// maxFreeSpans bounds the free-space map of one image; past it the rest of
// the free space is copied as if used (never less than needed).
const maxFreeSpans = 1 << 22

// UsedStats says what UsedOnly found.
type UsedStats struct {
	FileSystems int   // file systems whose allocation maps were read
	CopiedWhole int   // partitions (or the disk) of no file system vdisk reads
	FreeBytes   int64 // bytes the file systems mark free
	// SkippedBytes are free bytes that the image holds as data: what a plain
	// copy would have written and UsedOnly does not.
	SkippedBytes int64
}

// UsedOnly returns img with the free blocks of its file systems reported
// as unallocated and read as zeros, so a conversion copies only what the
// file systems use. Partitions with no file system vdisk reads, the
// partition table and the gaps between partitions are kept whole.
func UsedOnly(img formats.Image) (formats.Image, UsedStats, error) {
	var st UsedStats
	_, parts, err := Describe(img)
	if err != nil {
		return nil, st, err
	}
	var free []fsnode.Span
	for _, p := range parts {
		spans, err := freeSpans(img, p)
		if err != nil {
			return nil, st, fmt.Errorf("partition %d (%s): %w", p.Number, p.FileSystem, err)
		}
		if spans == nil {
			st.CopiedWhole++
			continue
		}
		st.FileSystems++
		for _, s := range spans {
			if len(free) >= maxFreeSpans {
				break
			}
			free = append(free, fsnode.Span{Start: p.Start + s.Start, End: p.Start + min(s.End, p.Size)})
			st.FreeBytes += min(s.End, p.Size) - s.Start
		}
	}
	slices.SortFunc(free, func(a, b fsnode.Span) int { return int(a.Start - b.Start) })
	u := &usedImage{Image: img, free: free}
	if st.SkippedBytes, err = u.skipped(); err != nil {
		return nil, st, err
	}
	return u, st, nil
}

// freeSpans reads a partition's free-space map (nil: not a file system
// vdisk reads, copied whole).
func freeSpans(img formats.Image, p Part) ([]fsnode.Span, error) {
	view := partition.View(img, p.Partition, false)
	var r io.ReaderAt = view
	size := view.Size()
	switch p.FileSystem {
	case "ext2", "ext3", "ext4":
		f, err := ext4.Open(r, size)
		if err != nil {
			return nil, err
		}
		return nonNil(f.FreeSpans())
	case "vfat":
		f, err := fat.Open(r, size)
		if err != nil {
			return nil, err
		}
		return nonNil(f.FreeSpans())
	case "ntfs":
		f, err := ntfs.Open(r, size)
		if err != nil {
			return nil, err
		}
		return nonNil(f.FreeSpans())
	}
	return nil, nil
}

func nonNil(s []fsnode.Span, err error) ([]fsnode.Span, error) {
	if s == nil && err == nil {
		s = []fsnode.Span{}
	}
	return s, err
}

// usedImage hides free blocks: Extents reports them unallocated, ReadAt
// returns zeros for them.
type usedImage struct {
	formats.Image
	free []fsnode.Span // sorted, disjoint
}

// overlapping returns the free spans that meet [off, end).
func (u *usedImage) overlapping(off, end int64) []fsnode.Span {
	i, _ := slices.BinarySearchFunc(u.free, off, func(s fsnode.Span, off int64) int {
		if s.End <= off {
			return -1
		}
		return 1
	})
	j := i
	for j < len(u.free) && u.free[j].Start < end {
		j++
	}
	return u.free[i:j]
}

func (u *usedImage) ReadAt(p []byte, off int64) (int, error) {
	n, err := u.Image.ReadAt(p, off)
	for _, s := range u.overlapping(off, off+int64(n)) {
		clear(p[max(s.Start, off)-off : min(s.End, off+int64(n))-off])
	}
	return n, err
}

// Extents splits the image's extents at the free spans, which become
// Unallocated.
func (u *usedImage) Extents(off, length int64) ([]formats.Extent, error) {
	exts, err := formats.ChainExtents(u.Image, off, length)
	if err != nil {
		return nil, err
	}
	var out []formats.Extent
	for _, e := range exts {
		pos := e.Offset
		for _, s := range u.overlapping(e.Offset, e.End()) {
			lo, hi := max(s.Start, e.Offset), min(s.End, e.End())
			if lo > pos {
				out = imageio.AppendExtent(out, piece(e, pos, lo))
			}
			out = imageio.AppendExtent(out, formats.Extent{Offset: lo, Length: hi - lo, Kind: formats.Unallocated, HostOffset: -1})
			pos = hi
		}
		if pos < e.End() {
			out = imageio.AppendExtent(out, piece(e, pos, e.End()))
		}
	}
	return out, nil
}

// piece is the part [lo, hi) of extent e.
func piece(e formats.Extent, lo, hi int64) formats.Extent {
	p := e
	p.Offset, p.Length = lo, hi-lo
	if p.HostOffset >= 0 {
		p.HostOffset += lo - e.Offset
	}
	return p
}

// skipped counts the free bytes the image stores as data.
func (u *usedImage) skipped() (int64, error) {
	var n int64
	const window = 1 << 30
	for off := int64(0); off < u.Size(); off += window {
		exts, err := formats.ChainExtents(u.Image, off, min(window, u.Size()-off))
		if err != nil {
			return 0, err
		}
		for _, e := range exts {
			if e.Kind != formats.Data {
				continue
			}
			for _, s := range u.overlapping(e.Offset, e.End()) {
				n += min(s.End, e.End()) - max(s.Start, e.Offset)
			}
		}
	}
	return n, nil
}
