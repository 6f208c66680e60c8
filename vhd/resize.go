package vhd

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/vdiskio/vdisk/formats"
)

// Resize changes the virtual size (qemu cannot resize VHDs). The new size
// must be whole sectors; it is kept exactly: an image sized by its geometry
// switches to current_size semantics (creator "qem2") when no geometry gives
// the new size. A fixed disk grows or shrinks by moving its footer; a
// dynamic disk grows within the room its BAT has before the first block.
// Shrinking a dynamic disk and resizing a differencing disk are refused.
func (img *Image) Resize(ctx context.Context, newSize int64, shrink bool) error {
	switch {
	case !img.writable || img.stream:
		return fmt.Errorf("%s: resize needs the image opened writable: %w", img.name, formats.ErrReadOnly)
	case newSize < 0 || newSize%sectorSize != 0:
		return fmt.Errorf("%w: new size %d is not a whole number of %d-byte sectors", formats.ErrInvalidOption, newSize, sectorSize)
	case newSize < img.size && !shrink:
		return fmt.Errorf("%s: use the --shrink option to perform a shrink operation", img.name)
	case img.differencing():
		return formats.Unsupportedf(img.name, "resizing a differencing VHD")
	case img.dynamic() && newSize < img.size:
		return formats.Unsupportedf(img.name, "shrinking a dynamic VHD (convert it to a smaller image instead)")
	case img.dynamic() && newSize > maxDynamicSize, !img.dynamic() && newSize > maxFixedSize:
		return fmt.Errorf("%w: size %d exceeds the VHD maximum", formats.ErrInvalidOption, newSize)
	case newSize == img.size:
		return nil
	}
	ft := img.ft
	img.resizeFooter(&ft, newSize)
	if !img.dynamic() {
		return img.resizeFixed(ft, newSize)
	}
	return img.resizeDynamic(ft, newSize)
}

// resizeFooter sets ft's size fields for exactly newSize bytes: a
// current_size creator gets the geometry rounded down; a geometry-sized
// image keeps its creator when a geometry gives the size exactly, else
// becomes "qem2".
func (img *Image) resizeFooter(ft *footer, newSize int64) {
	sectors := newSize / sectorSize
	ft.CurrentSize = uint64(newSize)
	g := geometryFor(sectors)
	byCurrentSize := false
	for _, app := range currentSizeCreators {
		byCurrentSize = byCurrentSize || string(ft.CreatorApp[:]) == app
	}
	if !byCurrentSize {
		if g2, s := roundUpToGeometry(sectors); s == sectors {
			g = g2
		} else {
			copy(ft.CreatorApp[:], creatorQemu2)
		}
	}
	ft.Cylinders, ft.Heads, ft.SectorsPerTrack = g.Cylinders, g.Heads, g.SectorsPerTrack
}

func (img *Image) resizeFixed(ft footer, newSize int64) error {
	old := img.size
	img.ft, img.size, img.footerOff, img.footerLen = ft, newSize, newSize, footerSize
	if newSize > old {
		// The old footer becomes disk data: it must read as zeros.
		if _, err := img.f.WriteAt(make([]byte, footerSize), old); err != nil {
			return fmt.Errorf("%s: %w", img.name, err)
		}
	}
	if err := img.writeFooterAt(newSize); err != nil {
		return err
	}
	if err := img.f.Truncate(newSize + footerSize); err != nil {
		return fmt.Errorf("%s: %w", img.name, err)
	}
	img.fileSize = newSize + footerSize
	return nil
}

// resizeDynamic grows the BAT into the padding before the first block (or
// locator data) and rewrites header and footers.
func (img *Image) resizeDynamic(ft footer, newSize int64) error {
	img.mu.Lock()
	defer img.mu.Unlock()
	entries := int((newSize + img.blockSize - 1) / img.blockSize)
	room := int64(1) << 62 // an image without blocks or locator data can move its footer
	for _, e := range img.bat {
		if e != batUnused {
			room = min(room, int64(e)*sectorSize)
		}
	}
	for _, l := range img.hdr.Locators {
		if l.PlatformCode != platNone && int64(l.DataOffset) >= int64(img.hdr.TableOffset) {
			room = min(room, int64(l.DataOffset))
		}
	}
	if int64(img.hdr.TableOffset)+4*int64(entries) > room {
		return formats.Unsupportedf(img.name, "growing to %d bytes needs %d BAT entries; the BAT has room for %d before the first block (convert to a new image instead)",
			newSize, entries, (room-int64(img.hdr.TableOffset))/4)
	}
	if extra := entries - len(img.bat); extra > 0 {
		b := make([]byte, 4*extra)
		for i := 0; i < extra; i++ {
			binary.BigEndian.PutUint32(b[4*i:], batUnused)
			img.bat = append(img.bat, batUnused)
		}
		if _, err := img.f.WriteAt(b, int64(img.hdr.TableOffset)+4*int64(len(img.bat)-extra)); err != nil {
			return fmt.Errorf("%s: writing BAT: %w", img.name, err)
		}
		img.full = append(img.full, make([]uint64, (len(img.bat)+63)/64-len(img.full))...)
	}
	if uint32(entries) > img.hdr.MaxTableEntries {
		img.hdr.MaxTableEntries = uint32(entries)
	}
	img.batEnd = max(img.batEnd, roundUp(int64(img.hdr.TableOffset)+4*int64(img.hdr.MaxTableEntries), sectorSize))
	if img.nextFree < img.batEnd { // the footer moves after the grown BAT
		pad := make([]byte, img.batEnd-int64(img.hdr.TableOffset)-4*int64(len(img.bat)))
		fill(pad, 0xFF)
		if _, err := img.f.WriteAt(pad, int64(img.hdr.TableOffset)+4*int64(len(img.bat))); err != nil {
			return fmt.Errorf("%s: writing BAT: %w", img.name, err)
		}
		img.nextFree = img.batEnd
	}
	if _, err := img.f.WriteAt(img.hdr.encode(), int64(img.ft.DataOffset)); err != nil {
		return fmt.Errorf("%s: writing dynamic header: %w", img.name, err)
	}
	img.ft, img.size, img.footDirt = ft, newSize, true
	return nil
}
