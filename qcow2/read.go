package qcow2

import (
	"fmt"
	"io"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/cache"
	"github.com/vdiskio/vdisk/internal/imageio"
)

// newL2Cache keeps decoded L2 tables by host offset: at most limit tables
// (at least 4) of tableBytes each, charged to the image's metadata budget.
func newL2Cache(limit, tableBytes int64, budget *formats.Budget) *cache.Cache[int64, []uint64] {
	return cache.New[int64, []uint64](int(max(limit, 4)), budget, func([]uint64) int64 { return tableBytes })
}

// l2 returns the L2 table at host offset off (caller holds img.mu, unless
// the image is read-only).
func (img *Image) l2(off int64) ([]uint64, error) {
	if t, ok := img.cache.Get(off); ok {
		return t, nil
	}
	if img.w != nil {
		if t, ok := img.w.pending[off]; ok {
			// Evicted but not yet written: it goes back to the cache, dirty.
			delete(img.w.pending, off)
			img.cache.Put(off, t, true)
			return t, nil
		}
	}
	if off%img.clusterSize != 0 {
		return nil, formats.Corruptf(img.name, "L2 table", off, "offset is not cluster aligned")
	}
	if off+img.clusterSize > img.hostEnd() {
		return nil, formats.Corruptf(img.name, "L2 table", off, "past the end of the file")
	}
	buf := make([]byte, img.clusterSize)
	if n, err := img.f.ReadAt(buf, off); n < len(buf) {
		if err == io.EOF && img.w != nil {
			clear(buf[n:])
		} else {
			return nil, formats.Corruptf(img.name, "L2 table", off, "truncated: %v", err)
		}
	}
	t := decodeTable(buf)
	img.cache.Put(off, t, false)
	return t, nil
}

// segment kinds.
const (
	segUnalloc = iota
	segZero
	segData
	segCompressed
)

// segment is a run of virtual bytes with one mapping.
type segment struct {
	virt, length int64
	kind         int
	host         int64 // segData (and preallocated segZero): host offset of virt; else -1
	centry       uint64
}

// lookup returns the L2 entry and subcluster bitmap of virtual cluster vc
// (caller holds img.mu, unless the image is read-only). A missing L2 table
// gives entry 0.
func (img *Image) lookup(vc int64) (entry, bitmap uint64, err error) {
	l1i := vc >> img.l2Bits
	if l1i >= int64(len(img.l1)) {
		return 0, 0, nil
	}
	l1e := img.l1[l1i]
	l2Off := int64(l1e & offsetMask)
	if l2Off == 0 {
		return 0, 0, nil
	}
	if img.w == nil && l1e&l1ReservedMask != 0 {
		return 0, 0, formats.Corruptf(img.name, "L1 table", -1, "entry %d (%#x) has reserved bits set", l1i, l1e)
	}
	t, err := img.l2(l2Off)
	if err != nil {
		return 0, 0, err
	}
	i := vc & (1<<img.l2Bits - 1)
	if img.extL2 {
		return t[2*i], t[2*i+1], nil
	}
	return t[i], 0, nil
}

// mapRange resolves [off, off+length) into segments (caller holds img.mu,
// unless the image is read-only: see mapping).
func (img *Image) mapRange(off, length int64, out []segment) ([]segment, error) {
	cs := img.clusterSize
	end := off + length
	for off < end {
		vc := off / cs
		if l1i := vc >> img.l2Bits; l1i >= int64(len(img.l1)) || img.l1[l1i]&offsetMask == 0 {
			// Whole L2 range unallocated: skip it at once.
			next := min(end, (l1i+1)<<(img.l2Bits+img.clusterBits))
			out = appendSeg(out, segment{virt: off, length: next - off, kind: segUnalloc, host: -1})
			off = next
			continue
		}
		entry, bitmap, err := img.lookup(vc)
		if err != nil {
			return out, err
		}
		cEnd := min(end, (vc+1)*cs)
		out, err = img.classify(out, vc, entry, bitmap, off, cEnd)
		if err != nil {
			return out, err
		}
		off = cEnd
	}
	return out, nil
}

// classify appends the segments of [from, to) inside virtual cluster vc.
func (img *Image) classify(out []segment, vc int64, entry, bitmap uint64, from, to int64) ([]segment, error) {
	cs := img.clusterSize
	base := vc * cs
	if entry&oflagCompressed != 0 {
		if img.dataName != "" {
			return out, formats.Corruptf(img.name, "L2 table", -1, "compressed cluster %d in an image with an external data file", vc)
		}
		return append(out, segment{virt: from, length: to - from, kind: segCompressed, host: -1, centry: entry}), nil
	}
	host := int64(entry & offsetMask)
	if entry&l2ReservedMask != 0 && !img.extL2 || img.extL2 && entry&(l2ReservedMask|oflagZero) != 0 {
		return out, formats.Corruptf(img.name, "L2 table", -1, "entry for cluster %d (%#x) has reserved bits set", vc, entry)
	}
	if host != 0 || (img.dataName != "" && entry&oflagCopied != 0) {
		if err := img.checkHost(vc, host); err != nil {
			return out, err
		}
	}
	if !img.extL2 {
		seg := segment{virt: from, length: to - from, host: -1}
		switch {
		case entry&oflagZero != 0 && img.hdr.Version >= 3:
			seg.kind = segZero
			if host != 0 {
				seg.host = host + from - base
			}
		case host != 0 || (img.dataName != "" && entry&oflagCopied != 0):
			seg.kind, seg.host = segData, host+from-base
		default:
			seg.kind = segUnalloc
		}
		return appendSeg(out, seg), nil
	}
	if bitmap&subAllocMask&(bitmap>>32) != 0 {
		return out, formats.Corruptf(img.name, "L2 table", -1, "cluster %d: subclusters both allocated and zero (bitmap %#x)", vc, bitmap)
	}
	sc := cs / subclusters
	for from < to {
		i := (from - base) / sc
		sEnd := min(to, base+(i+1)*sc)
		seg := segment{virt: from, length: sEnd - from, host: -1}
		switch {
		case bitmap&(1<<i) != 0:
			if host == 0 && img.dataName == "" {
				return out, formats.Corruptf(img.name, "L2 table", -1, "cluster %d: allocated subcluster without a host offset", vc)
			}
			seg.kind, seg.host = segData, host+from-base
		case bitmap&(1<<(32+i)) != 0:
			seg.kind = segZero
		default:
			seg.kind = segUnalloc
		}
		out = appendSeg(out, seg)
		from = sEnd
	}
	return out, nil
}

// hostEnd returns the end of the host clusters in use, which grows as a
// writable image allocates (caller holds img.mu).
func (img *Image) hostEnd() int64 {
	if img.w != nil {
		return img.w.fileEnd
	}
	return img.fileEnd
}

// checkHost validates a data cluster's host offset.
func (img *Image) checkHost(vc, host int64) error {
	if host%img.clusterSize != 0 {
		return formats.Corruptf(img.name, "L2 table", -1, "cluster %d: host offset %#x is not cluster aligned", vc, host)
	}
	if img.dataName == "" && host >= img.hostEnd() {
		return formats.Corruptf(img.name, "L2 table", -1, "cluster %d: host offset %#x is past the end of the file", vc, host)
	}
	return nil
}

// appendSeg appends s, merging it with the previous segment when contiguous.
func appendSeg(out []segment, s segment) []segment {
	if n := len(out); n > 0 && s.kind != segCompressed {
		p := &out[n-1]
		if p.kind == s.kind && p.virt+p.length == s.virt &&
			((p.host < 0 && s.host < 0) || (p.host >= 0 && p.host+p.length == s.host)) {
			p.length += s.length
			return out
		}
	}
	return append(out, s)
}

// compressedRange decodes a compressed L2 entry into host offset and length.
func (img *Image) compressedRange(entry uint64) (off, n int64) {
	x := img.sectorsShift
	off = int64(entry & (1<<x - 1))
	sectors := int64((entry>>x)&(1<<(62-x)-1)) + 1
	return off, sectors*compressedSector - off%compressedSector
}

// ReadAt reads virtual bytes; safe for concurrent use.
func (img *Image) ReadAt(p []byte, off int64) (int, error) {
	n, eof := imageio.ClipRead(p, off, img.size)
	if n == 0 {
		return 0, eof
	}
	segs, end, err := img.mapping(off, int64(n))
	if err != nil {
		return 0, err
	}
	if err := img.readSegments(p[:n], off, segs, end); err != nil {
		return 0, err
	}
	return n, eof
}

// mapping resolves [off, off+length) into segments and returns them with
// the host end of file they were mapped against. A writable image maps
// under img.mu (writers change the L1 table, the L2 tables and the end of
// file); a read-only image never changes them and its L2 cache is safe for
// concurrent use, so it maps without the image-wide lock: a reader waiting
// for an L2 table from a slow backend does not stall the others.
func (img *Image) mapping(off, length int64) ([]segment, int64, error) {
	if img.w == nil {
		segs, err := img.mapRange(off, length, nil)
		return segs, img.fileEnd, err
	}
	img.mu.Lock()
	defer img.mu.Unlock()
	segs, err := img.mapRange(off, length, nil)
	return segs, img.hostEnd(), err
}

// readSegments fills p, the virtual bytes from off, from their mapping segs;
// end is hostEnd when segs were mapped (read under img.mu, as WriteAt
// changes it).
func (img *Image) readSegments(p []byte, off int64, segs []segment, end int64) error {
	var cbuf []byte
	for _, s := range segs {
		// The bytes of p after the segment are scratch space until their own
		// segments fill them (segments are in offset order).
		dst := p[s.virt-off : s.virt-off+s.length : len(p)]
		switch s.kind {
		case segZero:
			clear(dst)
		case segUnalloc:
			if err := imageio.ReadBacking(img.backing, dst, s.virt); err != nil {
				return err
			}
		case segData:
			if err := img.readData(dst, s.host, s.virt); err != nil {
				return err
			}
		case segCompressed:
			if s.virt%img.clusterSize == 0 && s.length == img.clusterSize {
				// A whole cluster: inflate in place.
				if err := img.readCompressed(dst, s.centry, s.virt/img.clusterSize, end); err != nil {
					return err
				}
				continue
			}
			if cbuf == nil {
				cbuf = make([]byte, img.clusterSize, img.clusterSize+zstdSlackBytes)
			}
			if err := img.readCompressed(cbuf, s.centry, s.virt/img.clusterSize, end); err != nil {
				return err
			}
			copy(dst, cbuf[s.virt%img.clusterSize:])
		}
	}
	return nil
}

// readHost reads data bytes; bytes past the end of the file read as zeros
// (the last cluster of a file may be short).
func (img *Image) readHost(dst []byte, host int64) error {
	got, err := img.data.ReadAt(dst, host)
	if got < len(dst) {
		if err != io.EOF && err != nil {
			return fmt.Errorf("%s: reading data at %d: %w", img.name, host, err)
		}
		clear(dst[got:])
	}
	return nil
}

// readCompressed inflates the compressed cluster described by entry, which
// lies before host offset end.
func (img *Image) readCompressed(dst []byte, entry uint64, vc, end int64) error {
	coff, csize := img.compressedRange(entry)
	if coff >= end || coff < img.clusterSize {
		return formats.Corruptf(img.name, "compressed cluster", coff, "cluster %d: offset outside the file", vc)
	}
	bp, _ := img.codec.srcs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	defer img.codec.srcs.Put(bp)
	n := min(csize, end-coff)
	if int64(cap(*bp)) < n {
		*bp = make([]byte, n)
	}
	src := (*bp)[:n]
	got, err := img.f.ReadAt(src, coff)
	if got == 0 && err != nil {
		return fmt.Errorf("%s: reading compressed cluster at %d: %w", img.name, coff, err)
	}
	if err := img.codec.decompress(dst, src[:got]); err != nil {
		return formats.Corruptf(img.name, "compressed cluster", coff, "cluster %d: %v", vc, err)
	}
	return nil
}

// Extents reports this layer's allocation of [off, off+length).
func (img *Image) Extents(off, length int64) ([]formats.Extent, error) {
	length = min(length, img.size-off)
	if length <= 0 || off < 0 {
		return nil, nil
	}
	segs, _, err := img.mapping(off, length)
	if err != nil {
		return nil, err
	}
	exts := make([]formats.Extent, 0, len(segs))
	for _, s := range segs {
		e := formats.Extent{Offset: s.virt, Length: s.length, HostOffset: s.host, HostFile: img.dataName}
		if img.crypt != nil {
			e.HostOffset = -1 // the host bytes are ciphertext: no plain mapping (as qemu)
		}
		switch s.kind {
		case segUnalloc:
			e.Kind, e.HostFile = formats.Unallocated, ""
		case segZero:
			e.Kind = formats.Zero
		case segData:
			e.Kind = formats.Data
		case segCompressed:
			e.Kind, e.Compressed, e.HostFile = formats.Data, true, ""
		}
		exts = append(exts, e)
	}
	return imageio.MergeExtents(exts), nil
}

// bitmapInfo lists the persistent dirty bitmaps as qemu's info does, or nil.
func (img *Image) bitmapInfo() []BitmapDetails {
	var out []BitmapDetails
	for _, e := range img.bitmapDir() {
		if !e.whole {
			break
		}
		fl := []string{}
		if e.flags&1 != 0 {
			fl = append(fl, "in-use")
		}
		if e.flags&2 != 0 {
			fl = append(fl, "auto")
		}
		out = append(out, BitmapDetails{Flags: fl, Name: e.name, Granularity: int64(1) << e.granBits})
	}
	return out
}
