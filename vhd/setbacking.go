package vhd

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vdiskio/vdisk/formats"
)

// Relinking in place (qemu-img rebase; qemu's vpc driver cannot). A
// differencing disk's link is the dynamic header's parent fields (unique
// id, timestamp, UTF-16BE name) and its W2ru/W2ku locators, whose data
// lies elsewhere in the file; the footer's disk type says whether the disk
// has a parent at all. Every change is written in an order that leaves a
// readable disk at each step:
//
//   - new locator data first: in the entry's own space when the path fits
//     there (the header still pins the old parent by unique id, so until the
//     header is written an open that follows the new path is refused and the
//     header's parent name is tried next), else in new space at the end of
//     the file (the trailing footer moves behind it first, so the file is
//     never without one);
//   - then the 1024-byte header (one write, checksummed);
//   - the footer's disk type last when it changes (dynamic -> differencing),
//     or first (differencing -> dynamic, flattening: with type 3 the header's
//     parent fields are ignored), both footer copies.

// SetBacking points the disk at backing (a VHD) under name, or makes it a
// dynamic disk without parent (name ""). format must be "" or vpc/vhd.
// A fixed disk has no parent link: it can only stay without one.
func (img *Image) SetBacking(name, format string, backing formats.Image) error {
	if !img.writable {
		return fmt.Errorf("%s: %w", img.name, formats.ErrReadOnly)
	}
	if format != "" && format != Name && format != "vhd" {
		return formats.Unsupportedf(img.name, "a VHD parent in format %s (a differencing VHD's parent is a VHD)", format)
	}
	if !img.dynamic() {
		if name == "" {
			return nil
		}
		return formats.Unsupportedf(img.name, "a backing file for a fixed VHD (only dynamic disks can become differencing disks)")
	}
	if err := img.Flush(); err != nil {
		return err
	}
	if err := formats.Sync(img.f); err != nil {
		return fmt.Errorf("%s: %w", img.name, err)
	}
	var err error
	if name == "" {
		err = img.unlink()
	} else {
		var parent *Image
		if p, ok := backing.(*Image); ok {
			parent = p
		} else if backing != nil {
			return formats.Unsupportedf(img.name, "parent %q is %s, not a VHD", name, backing.Format())
		} else {
			return fmt.Errorf("%s: relinking needs the new parent %q open (its unique id is stored): %w", img.name, name, formats.ErrInvalidOption)
		}
		err = img.link(name, parent)
	}
	if err != nil {
		return err
	}
	if err := formats.Sync(img.f); err != nil {
		return fmt.Errorf("%s: %w", img.name, err)
	}
	img.mu.Lock()
	old := img.parent
	img.parent, img.parentRef, img.parentPath = nil, "", ""
	if backing != nil {
		img.parent, img.parentRef = backing, name
		img.parentPath = img.parentFile(name)
		img.parentTSMatch = true
	}
	img.mu.Unlock()
	if old != nil && old != backing {
		old.Close()
	}
	return nil
}

// parentFile is the absolute path of a parent named ref beside this disk.
func (img *Image) parentFile(ref string) string {
	p := filepath.FromSlash(ref)
	if !filepath.IsAbs(p) {
		p = filepath.Join(filepath.Dir(img.name), p)
	}
	if a, err := filepath.Abs(p); err == nil {
		p = a
	}
	return filepath.Clean(p)
}

// locatorPaths are the W2ru (relative, ".\\name") and W2ku (absolute)
// paths of parent ref, as newDifferencing writes them.
func (img *Image) locatorPaths(ref string) (rel, abs string) {
	abs = img.parentFile(ref)
	rel = filepath.ToSlash(ref)
	if filepath.IsAbs(filepath.FromSlash(ref)) {
		if r, err := relativeTo(filepath.Dir(img.name), abs); err == nil {
			rel = r
		}
	}
	rel = strings.TrimPrefix(rel, "./")
	if !strings.HasPrefix(rel, "../") {
		rel = "./" + rel
	}
	return strings.ReplaceAll(rel, "/", `\`), strings.ReplaceAll(filepath.ToSlash(abs), "/", `\`)
}

// link stores parent (named ref) in the header and the locators, and
// makes the disk a differencing disk.
func (img *Image) link(ref string, parent *Image) error {
	h := img.hdr
	h.ParentUniqueID = parent.ft.UniqueID
	h.ParentTimestamp = parent.ft.Timestamp
	if st, err := os.Stat(img.parentFile(ref)); err == nil {
		h.ParentTimestamp = vhdTime(st.ModTime())
	}
	rel, abs := img.locatorPaths(ref)
	base := filepath.Base(img.parentFile(ref))
	if len(encodeUTF16(base, binary.BigEndian)) > parentNameSize {
		return formats.Limitf(img.name, "dynamic header", int64(img.ft.DataOffset)+parentNameOff, "parent name %q exceeds the %d-byte field", base, parentNameSize)
	}
	h.setParentName(base)
	for _, loc := range []struct {
		code uint32
		path string
	}{{platW2ru, rel}, {platW2ku, abs}} {
		if err := img.placeLocator(&h, loc.code, encodeUTF16(loc.path, binary.LittleEndian)); err != nil {
			return err
		}
	}
	// Other platforms' locators would name the old parent: dropped.
	for i, l := range h.Locators {
		if l.PlatformCode != platW2ru && l.PlatformCode != platW2ku {
			h.Locators[i] = locator{}
		}
	}
	if err := img.writeHeader(h); err != nil {
		return err
	}
	if img.ft.DiskType != typeDifferencing {
		return img.setDiskType(typeDifferencing)
	}
	return nil
}

// unlink makes a differencing disk a dynamic one: the footer first, then
// the header without parent fields.
func (img *Image) unlink() error {
	if img.ft.DiskType != typeDifferencing {
		return nil
	}
	if err := img.setDiskType(typeDynamic); err != nil {
		return err
	}
	h := img.hdr
	h.ParentUniqueID, h.ParentTimestamp = [16]byte{}, 0
	h.ParentName = [parentNameSize]byte{}
	h.Locators = [numLocators]locator{}
	return img.writeHeader(h)
}

// placeLocator writes data as the locator of platform code: in the space
// of h's locator of that code when it fits, else in new space at the end
// of the file; h's entry (or a free one) is updated to it.
func (img *Image) placeLocator(h *dynHeader, code uint32, data []byte) error {
	slot := -1
	for i, l := range h.Locators {
		if l.PlatformCode == code {
			slot = i
			break
		}
	}
	if slot < 0 {
		for i, l := range h.Locators {
			if l.PlatformCode == platNone {
				slot = i
				break
			}
		}
	}
	where := int64(img.ft.DataOffset) + locatorOff
	if slot < 0 {
		return formats.Limitf(img.name, "parent locator", where, "all %d locator entries are in use", numLocators)
	}
	where += int64(slot) * locatorSize
	if len(data) > maxLocatorBytes {
		return formats.Limitf(img.name, "parent locator", where, "a %d-byte path exceeds %d bytes", len(data), maxLocatorBytes)
	}
	l := h.Locators[slot]
	space := locatorSpace(l)
	off := int64(l.DataOffset)
	if l.PlatformCode != code || int64(len(data)) > space || off < img.batEnd {
		// New space at the end of the data: the footer moves behind it.
		space = max(roundUp(int64(len(data)), sectorSize), sectorSize)
		img.mu.Lock()
		off = img.nextFree
		img.nextFree += space
		img.mu.Unlock()
		if err := img.writeFooterAt(img.nextFree); err != nil {
			return err
		}
	}
	padded := make([]byte, roundUp(max(int64(len(data)), 1), sectorSize))
	copy(padded, data)
	if _, err := img.f.WriteAt(padded[:min(int64(len(padded)), space)], off); err != nil {
		return fmt.Errorf("%s: writing parent locator %d at %d: %w", img.name, slot, off, err)
	}
	h.Locators[slot] = locator{PlatformCode: code, DataSpace: uint32(space), DataLength: uint32(len(data)), DataOffset: uint64(off)}
	return nil
}

// locatorSpace is the room a locator's data may use, in bytes: its
// DataSpace read as bytes (what Windows and vdisk write) when that holds
// its data, else the whole sectors the data occupies.
func locatorSpace(l locator) int64 {
	used := roundUp(int64(l.DataLength), sectorSize)
	if s := int64(l.DataSpace); s >= used && s%sectorSize == 0 {
		return s
	}
	return used
}

// writeHeader writes h (checksummed) over the dynamic header.
func (img *Image) writeHeader(h dynHeader) error {
	b := h.encode()
	if _, err := img.f.WriteAt(b, int64(img.ft.DataOffset)); err != nil {
		return fmt.Errorf("%s: writing dynamic header: %w", img.name, err)
	}
	img.hdr = h
	return nil
}

// setDiskType rewrites both footer copies with disk type t.
func (img *Image) setDiskType(t diskType) error {
	img.ft.DiskType = t
	if err := img.writeFooterAt(img.nextFree); err != nil {
		return err
	}
	if err := img.writeFooterAt(0); err != nil {
		return err
	}
	if t == typeDifferencing && img.bitmaps == nil {
		img.bitmaps = newBitmapCache(formats.Limits{}.WithDefaults().CacheBytes, img.bitmapSize, img.budget)
	}
	return nil
}

// MakeEmpty drops every block of a differencing disk (qemu-img commit
// empties the top): the BAT, all entries unused, is written first (an
// interruption leaves blocks that still read as before or read through to
// the parent, which holds the same data after a commit), then the footer
// behind the metadata, and the file is cut there.
func (img *Image) MakeEmpty() error {
	if !img.writable {
		return fmt.Errorf("%s: %w", img.name, formats.ErrReadOnly)
	}
	if !img.differencing() {
		return formats.Unsupportedf(img.name, "emptying a VHD without a parent")
	}
	img.mu.Lock()
	defer img.mu.Unlock()
	for i := range img.bat {
		img.bat[i] = batUnused
	}
	if img.full != nil {
		clear(img.full)
	}
	img.bitmaps = newBitmapCache(formats.Limits{}.WithDefaults().CacheBytes, img.bitmapSize, img.budget)
	b := make([]byte, 4*len(img.bat))
	for i := range b {
		b[i] = 0xFF
	}
	if _, err := img.f.WriteAt(b, int64(img.hdr.TableOffset)); err != nil {
		return fmt.Errorf("%s: writing BAT: %w", img.name, err)
	}
	img.dirtyLo, img.dirtyHi = len(img.bat), 0
	if err := formats.Sync(img.f); err != nil {
		return fmt.Errorf("%s: %w", img.name, err)
	}
	end := img.metadataEnd()
	if err := img.writeFooterAt(end); err != nil {
		return err
	}
	if err := img.f.Truncate(end + footerSize); err != nil {
		return fmt.Errorf("%s: %w", img.name, err)
	}
	img.nextFree, img.footDirt = end, false
	img.fileSize = end + footerSize
	return formats.Sync(img.f)
}

// metadataEnd is the end of the BAT and the locator data (the blocks
// start there).
func (img *Image) metadataEnd() int64 {
	end := img.batEnd
	for _, l := range img.hdr.Locators {
		if l.PlatformCode != platNone {
			end = max(end, int64(l.DataOffset)+locatorSpace(l))
		}
	}
	return end
}
