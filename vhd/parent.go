package vhd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/cache"
	"github.com/vdiskio/vdisk/internal/imageio"
)

// maxLocatorBytes bounds the data of one parent locator (a Windows path is
// at most 32767 UTF-16 units).
const maxLocatorBytes = 64 << 10

// locatorOrder is the order parent locators are tried in: relative paths
// first (the safe reference policy allows only those), then absolute ones,
// then the file URL. "Mac " (an alias record) cannot be followed.
var locatorOrder = []uint32{platW2ru, platWi2r, platW2ku, platWi2k, platMacX}

func platformName(code uint32) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], code)
	return printable(b[:])
}

// parentCandidate is a name a differencing disk gives its parent.
type parentCandidate struct {
	from string // "W2ru locator", "parent name", ...
	ref  string // slash-separated path
}

// parentCandidates lists the parent names stored in the header, in the order
// they are tried, without duplicates.
func (img *Image) parentCandidates() ([]parentCandidate, error) {
	var out []parentCandidate
	add := func(from, ref string) {
		if ref == "" {
			return
		}
		for _, c := range out {
			if c.ref == ref {
				return
			}
		}
		out = append(out, parentCandidate{from, ref})
	}
	for _, code := range locatorOrder {
		for i, l := range img.hdr.Locators {
			if l.PlatformCode != code {
				continue
			}
			ref, err := img.readLocator(i, l)
			if err != nil {
				return nil, err
			}
			add(platformName(code)+" locator", ref)
		}
	}
	add("parent name", windowsToSlash(img.hdr.parentName()))
	return out, nil
}

// readLocator reads and decodes the path held by locator i.
func (img *Image) readLocator(i int, l locator) (string, error) {
	where := int64(img.ft.DataOffset) + locatorOff + int64(i)*locatorSize
	if l.DataLength > maxLocatorBytes {
		return "", formats.Limitf(img.name, "parent locator", where, "%d bytes of locator data exceed %d", l.DataLength, maxLocatorBytes)
	}
	if l.DataOffset > uint64(img.fileSize) || uint64(l.DataLength) > uint64(img.fileSize)-l.DataOffset {
		return "", formats.Corruptf(img.name, "parent locator", where, "data at %d+%d lies outside the %d-byte file", l.DataOffset, l.DataLength, img.fileSize)
	}
	b := make([]byte, l.DataLength)
	if _, err := img.f.ReadAt(b, int64(l.DataOffset)); err != nil {
		return "", fmt.Errorf("%s: reading parent locator %d: %w", img.name, i, err)
	}
	switch l.PlatformCode {
	case platW2ru, platW2ku:
		return windowsToSlash(decodeUTF16(b, binary.LittleEndian)), nil
	case platWi2r, platWi2k:
		if n := bytes.IndexByte(b, 0); n >= 0 {
			b = b[:n]
		}
		return windowsToSlash(string(b)), nil
	case platMacX:
		return fileURLPath(string(bytes.TrimRight(b, "\x00"))), nil
	}
	return "", nil
}

// windowsToSlash turns a Windows path into a slash path: "C:\d\p.vhd"
// becomes "/d/p.vhd" (an absolute path), ".\p.vhd" becomes "p.vhd".
func windowsToSlash(p string) string {
	p = strings.TrimPrefix(p, `\\?\`) // Win32 long-path prefix
	p = strings.ReplaceAll(p, `\`, "/")
	if len(p) >= 2 && p[1] == ':' && (p[0]|0x20) >= 'a' && (p[0]|0x20) <= 'z' {
		p = "/" + strings.TrimLeft(p[2:], "/")
	}
	for strings.HasPrefix(p, "./") {
		p = strings.TrimLeft(p[2:], "/")
	}
	return p
}

// fileURLPath extracts the path of a "file://host/path" URL; anything else
// is returned as is, for the resolver to refuse.
func fileURLPath(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "file" || u.Path == "" {
		return s
	}
	return u.Path
}

// openParent opens the parent of a differencing disk through the resolver,
// trying each locator in turn, and checks the parent's UUID.
func (img *Image) openParent(ctx context.Context, opts formats.OpenOptions) error {
	if img.hdr.ParentUniqueID == img.ft.UniqueID {
		return formats.Corruptf(img.name, "dynamic header", int64(img.ft.DataOffset), "the differencing disk names itself (UUID %s) as its parent", formatUUID(img.ft.UniqueID))
	}
	cands, err := img.parentCandidates()
	if err != nil {
		return err
	}
	if len(cands) == 0 {
		for _, l := range img.hdr.Locators {
			if l.PlatformCode == platMac {
				return formats.Unsupportedf(img.name, "the parent is named only by a %q locator (a Mac OS alias record), which vdisk cannot follow", "Mac ")
			}
		}
		return formats.Corruptf(img.name, "dynamic header", int64(img.ft.DataOffset), "differencing disk names no parent")
	}
	var errs []error
	for _, c := range cands {
		err := img.tryParent(ctx, c, opts)
		if err == nil {
			return nil
		}
		if imageio.StopTrying(err) {
			return err // a loop or a limit: no other locator helps
		}
		errs = append(errs, fmt.Errorf("%s %q: %w", c.from, c.ref, err))
	}
	return fmt.Errorf("%s: cannot open the parent of the differencing disk: %w", img.name, errors.Join(errs...))
}

func (img *Image) tryParent(ctx context.Context, c parentCandidate, opts formats.OpenOptions) error {
	p, err := formats.OpenReference(ctx, img.name, c.ref, Name, opts)
	if err != nil {
		return err
	}
	pv, ok := p.(*Image)
	if !ok {
		p.Close()
		return formats.Unsupportedf(img.name, "parent %q is %s, not a VHD", c.ref, p.Format())
	}
	want := img.hdr.ParentUniqueID
	if want != ([16]byte{}) && pv.ft.UniqueID != want {
		p.Close()
		return formats.Corruptf(img.name, "dynamic header", int64(img.ft.DataOffset),
			"parent %q has UUID %s but the differencing disk was made over %s", c.ref, formatUUID(pv.ft.UniqueID), formatUUID(want))
	}
	img.parent, img.parentRef = p, c.ref
	img.parentPath, _ = opts.References().Resolve(img.name, c.ref)
	img.parentTSMatch = img.hdr.ParentTimestamp == pv.ft.Timestamp
	if !img.parentTSMatch && img.parentPath != "" {
		if st, err := os.Stat(img.parentPath); err == nil {
			img.parentTSMatch = img.hdr.ParentTimestamp == vhdTime(st.ModTime())
		}
	}
	return nil
}

// bitmapCache holds the sector bitmaps of a differencing disk's blocks,
// bounded in count (internal/cache: LRU, charged to the image's metadata
// budget, nil: none). Entries are shared: readers hold the image's read lock
// while using one, writers its write lock while changing one (and write it
// through to the file), so evicting never loses data.
type bitmapCache = cache.Cache[int, []byte]

func newBitmapCache(cacheBytes, bitmapSize int64, budget *formats.Budget) *bitmapCache {
	return cache.New[int, []byte](int(max(cacheBytes/max(bitmapSize, 1), 16)), budget,
		func(bm []byte) int64 { return int64(len(bm)) })
}

// bitmap returns the sector bitmap of block blk (BAT entry e); the caller
// holds img.mu.
func (img *Image) bitmap(blk int, e uint32) ([]byte, error) {
	if bm, ok := img.bitmaps.Get(blk); ok {
		return bm, nil
	}
	bm := make([]byte, img.bitmapSize)
	if err := img.readFile(bm, int64(e)*sectorSize); err != nil {
		return nil, err
	}
	img.bitmaps.Put(blk, bm, false)
	return bm, nil
}
