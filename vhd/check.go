package vhd

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"

	"github.com/vdiskio/vdisk/formats"
)

// Check verifies what opening tolerates (qemu has no VHD check): both
// footer copies and their checksums, the dynamic header's checksum and
// fields, the BAT against the file (bounds, overlaps with metadata, each
// other and the footer), the parent locators and the parent link. With
// RepairAll on a writable image it rewrites both footer copies and the
// header checksum from the values in use.
func (img *Image) Check(ctx context.Context, opts formats.CheckOptions) (*formats.CheckReport, error) {
	c := &checker{img: img, rep: &formats.CheckReport{}}
	size, err := img.f.Size()
	if err != nil {
		return nil, err
	}
	c.fileSize = size
	c.checkFooters()
	if img.dynamic() {
		c.checkHeader()
		if err := c.checkBAT(ctx); err != nil {
			return nil, err
		}
		c.checkLocators()
	}
	if opts.RepairAll && c.repairable > 0 {
		if err := c.repair(); err != nil {
			return nil, err
		}
	}
	return c.rep, nil
}

type checker struct {
	img        *Image
	rep        *formats.CheckReport
	fileSize   int64
	repairable int64 // corruptions that rewriting the footers/header fixes
}

func (c *checker) corrupt(repairable bool, format string, args ...any) {
	c.rep.Corruptions++
	if repairable {
		c.repairable++
	}
	c.rep.Messages = append(c.rep.Messages, "ERROR: "+fmt.Sprintf(format, args...))
}

func (c *checker) warn(format string, args ...any) {
	c.rep.Messages = append(c.rep.Messages, "Warning: "+fmt.Sprintf(format, args...))
}

func (c *checker) read(n int, off int64) []byte {
	b := make([]byte, n)
	if off < 0 {
		return nil
	}
	got, err := c.img.f.ReadAt(b, off)
	if err != nil && err != io.EOF {
		c.rep.CheckErrors++
		c.rep.Messages = append(c.rep.Messages, fmt.Sprintf("ERROR: reading %d bytes at %d: %v", n, off, err))
		return nil
	}
	return b[:got]
}

// checkFooters compares the trailing footer and (dynamic disks) the copy at
// offset 0 with the footer in use.
func (c *checker) checkFooters() {
	img := c.img
	tail := c.read(footerSize, c.fileSize-footerSize)
	tailOK := len(tail) == footerSize && footerValid(tail)
	if !tailOK && len(tail) == footerSize && footerValid(tail[1:]) {
		tail, tailOK = tail[1:], true
	}
	switch {
	case !tailOK && len(tail) >= 8 && bytes.HasPrefix(tail, []byte(footerCookie)):
		c.corrupt(true, "footer at offset %d has a bad checksum", c.fileSize-footerSize)
	case !tailOK:
		c.corrupt(true, "no footer at the end of the file (offset %d)", c.fileSize-footerSize)
	case !bytes.Equal(tail[:84], img.ft.encodeCopy()[:84]):
		c.corrupt(true, "the footer at the end of the file differs from the copy at offset 0")
	}
	if !img.dynamic() {
		return
	}
	head := c.read(footerSize, 0)
	switch {
	case len(head) < footerSize || !bytes.HasPrefix(head, []byte(footerCookie)):
		c.corrupt(true, "no footer copy at offset 0")
	case !footerValid(head):
		c.corrupt(true, "footer copy at offset 0 has a bad checksum")
	}
	ft := &img.ft
	if ft.Features&featureBits == 0 {
		c.warn("footer features %#x lack the reserved bit 1", ft.Features)
	}
	if ft.DataOffset%sectorSize != 0 {
		c.corrupt(false, "dynamic header offset %d is not sector-aligned", ft.DataOffset)
	}
}

// encodeCopy returns the footer's encoding without changing ft.
func (ft footer) encodeCopy() []byte { return ft.encode() }

func (c *checker) checkHeader() {
	img := c.img
	b := c.read(headerSize, int64(img.ft.DataOffset))
	if len(b) < headerSize {
		return
	}
	h := decodeHeader(b)
	if checksum(b, headerSumOff) != h.Checksum {
		c.corrupt(true, "dynamic header at offset %d has a bad checksum", img.ft.DataOffset)
	}
	if h.DataOffset != noDataOffset {
		c.corrupt(true, "dynamic header data offset is %#x, must be all ones", h.DataOffset)
	}
	if h.HeaderVersion != headerVersion {
		c.warn("dynamic header version %#x, expected %#x", h.HeaderVersion, headerVersion)
	}
	need := img.blocksNeeded()
	if int64(h.MaxTableEntries) > need {
		c.warn("the BAT has %d entries but the disk needs %d (Azure refuses such images)", h.MaxTableEntries, need)
	}
}

// blocksNeeded is how many blocks the disk's current_size (or its CHS size,
// when larger) needs: the BAT length a writer should give it.
func (img *Image) blocksNeeded() int64 {
	size := max(img.size, int64(min(img.ft.CurrentSize, 1<<62)))
	return (size + img.blockSize - 1) / img.blockSize
}

// span is a byte range of the file claimed by a structure.
type span struct {
	start, end int64
	what       string
}

// checkBAT checks every allocated block lies inside the file, after the
// metadata, apart from the others and the footer, and within the disk.
func (c *checker) checkBAT(ctx context.Context) error {
	img := c.img
	img.mu.RLock()
	bat := append([]uint32(nil), img.bat...)
	img.mu.RUnlock()
	needed := img.blocksNeeded()
	var spans []span
	for i, e := range bat {
		if i%65536 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if e == batUnused {
			continue
		}
		start := int64(e) * sectorSize
		end := start + img.blockBytes()
		switch {
		case int64(i) >= needed:
			c.corrupt(false, "block %d at offset %d lies beyond the end of the disk", i, start)
		case end > c.fileSize-img.footerLen:
			c.corrupt(false, "block %d at offset %d runs into the footer or past the end of the file", i, start)
		}
		spans = append(spans, span{start, end, fmt.Sprintf("block %d", i)})
	}
	spans = append(spans,
		span{0, footerSize, "footer copy"},
		span{int64(img.ft.DataOffset), int64(img.ft.DataOffset) + headerSize, "dynamic header"},
		span{int64(img.hdr.TableOffset), img.batEnd, "BAT"})
	for i, l := range img.hdr.Locators {
		if l.PlatformCode != platNone && l.DataLength > 0 {
			spans = append(spans, span{int64(min(l.DataOffset, 1<<62)), int64(min(l.DataOffset, 1<<62)) + int64(l.DataLength),
				fmt.Sprintf("parent locator %d", i)})
		}
	}
	sort.Slice(spans, func(a, b int) bool { return spans[a].start < spans[b].start })
	for i := 1; i < len(spans); i++ {
		if prev := spans[i-1]; spans[i].start < prev.end {
			c.corrupt(false, "%s at offset %d overlaps %s at offset %d", spans[i].what, spans[i].start, prev.what, prev.start)
		}
	}
	return nil
}

// checkLocators checks the locator data lies in the file and the parent
// link (UUID checked at open; the timestamp only warned about).
func (c *checker) checkLocators() {
	img := c.img
	if !img.differencing() {
		return
	}
	for i, l := range img.hdr.Locators {
		if l.PlatformCode == platNone {
			continue
		}
		if l.DataOffset > uint64(c.fileSize) || uint64(l.DataLength) > uint64(c.fileSize)-l.DataOffset {
			c.corrupt(false, "parent locator %d data at %d+%d lies outside the file", i, l.DataOffset, l.DataLength)
		}
	}
	if img.parent != nil && !img.parentTSMatch {
		c.warn("the parent %q changed after the differencing disk was made (timestamp differs)", img.parentRef)
	}
}

// repair rewrites the footer at both places and the header checksum.
func (c *checker) repair() error {
	img := c.img
	if !img.writable {
		return fmt.Errorf("%s: repair needs the image opened writable: %w", img.name, formats.ErrReadOnly)
	}
	img.mu.Lock()
	defer img.mu.Unlock()
	end := c.fileSize - img.footerLen
	if img.dynamic() {
		end = max(img.dataEnd(), end)
		if err := img.writeFooterAt(0); err != nil {
			return err
		}
		img.hdr.DataOffset = noDataOffset
		if _, err := img.f.WriteAt(img.hdr.encode(), int64(img.ft.DataOffset)); err != nil {
			return fmt.Errorf("%s: writing dynamic header: %w", img.name, err)
		}
	}
	if err := img.writeFooterAt(end); err != nil {
		return err
	}
	c.rep.CorruptionsFixed = c.repairable
	c.rep.Corruptions -= c.repairable
	return nil
}
