package qcow2

import (
	"context"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"

	"github.com/vdiskio/vdisk/formats"
)

// AmendKeys are the options `qemu-img amend -o` takes for qcow2, with
// their help, in qemu's order. compat, lazy_refcounts, refcount_bits and
// size, data_file, data_file_raw and the encrypt.* LUKS key slot options
// are done; the backing file is changed with rebase (as qemu says).
var AmendKeys = [][2]string{
	{"backing_file", "File name of a base image"},
	{"backing_fmt", "Image format of the base image"},
	{"compat", "Compatibility level (v2 [0.10] or v3 [1.1])"},
	{"data_file", "File name of an external data file"},
	{"data_file_raw", "The external data file must stay valid as a raw image"},
	{"encrypt.iter-time", "Time to spend in PBKDF in milliseconds"},
	{"encrypt.keyslot", "Select a single keyslot to modify explicitly"},
	{"encrypt.new-secret", "New secret to set in the matching keyslots. Empty string to erase"},
	{"encrypt.old-secret", "Select all keyslots that match this password"},
	{"encrypt.state", "Select new state of affected keyslots (active/inactive)"},
	{"lazy_refcounts", "Postpone refcount updates"},
	{"refcount_bits", "Width of a reference count entry in bits"},
	{"size", "Virtual disk size"},
}

// AmendError is a refusal worded as qemu-img amend words it; Hint is
// qemu's second line, when it prints one.
type AmendError struct {
	Msg, Hint string
	Kind      error
}

func (e *AmendError) Error() string { return e.Msg }
func (e *AmendError) Unwrap() error { return e.Kind }

func amendRefusal(kind error, hint, format string, args ...any) error {
	return &AmendError{Msg: fmt.Sprintf(format, args...), Hint: hint, Kind: kind}
}

// amendPlan is the target state of an amend.
type amendPlan struct {
	version      uint32
	lazy         bool
	refcountBits uint
	size         int64
	resize       bool
	crypt        *cryptAmend // encrypt.* key slot change, nil: none
	dataFile     *string     // data_file: the external data file's new name
	rawData      bool        // data_file_raw after the amend
}

// planAmend validates opts against the image as qemu does, before
// anything is changed.
func (img *Image) planAmend(opts map[string]string) (amendPlan, error) {
	h := &img.hdr
	p := amendPlan{version: h.Version, lazy: h.CompatibleFeatures&compatLazyRefcounts != 0,
		refcountBits: 1 << h.RefcountOrder, size: img.size}
	for _, k := range slices.Sorted(mapKeys(opts)) {
		if err := amendKnown(k); err != nil {
			return p, err
		}
	}
	if v, ok := opts["compat"]; ok {
		switch v {
		case "0.10", "v2":
			p.version = 2
		case "1.1", "v3":
			p.version = 3
		default:
			return p, amendRefusal(formats.ErrInvalidOption, "", "Unknown compatibility level %s", v)
		}
	}
	lazySet := false
	if v, ok := opts["lazy_refcounts"]; ok {
		b, err := parseOnOff("lazy_refcounts", v)
		if err != nil {
			return p, err
		}
		p.lazy, lazySet = b, true
	}
	if p.version < 3 && p.lazy {
		if lazySet {
			return p, amendRefusal(formats.ErrInvalidOption, "", "Lazy refcounts only supported with compatibility level 1.1 and above (use compat=1.1 or greater)")
		}
		p.lazy = false // a downgrade drops them, as qemu's does
	}
	if v, ok := opts["refcount_bits"]; ok {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 || n > 64 || n&(n-1) != 0 {
			return p, amendRefusal(formats.ErrInvalidOption, "", "Refcount width must be a power of two and may not exceed 64 bits")
		}
		p.refcountBits = uint(n)
		if p.version < 3 && n != 16 {
			return p, amendRefusal(formats.ErrInvalidOption, "", "Refcount widths other than 16 bits require compatibility level 1.1 or above (use compat=1.1 or greater)")
		}
	}
	if p.version < 3 && p.refcountBits != 16 {
		return p, amendRefusal(formats.ErrInvalidOption, "", "compat=0.10 requires refcount_bits=16")
	}
	if v, ok := opts["size"]; ok {
		n, err := formats.ParseSize(v)
		if err != nil || n < 0 {
			return p, amendRefusal(formats.ErrInvalidOption, "", "Parameter 'size' expects a non-negative number below 2^64")
		}
		p.size, p.resize = n, n != img.size
	}
	if err := img.planDataFile(opts, &p); err != nil {
		return p, err
	}
	ca, err := img.parseCryptAmend(opts)
	if err != nil {
		return p, err
	}
	p.crypt = ca
	return p, nil
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// amendKnown refuses what amend cannot do, in qemu's words.
func amendKnown(k string) error {
	switch {
	case k == "compat" || k == "lazy_refcounts" || k == "refcount_bits" || k == "size":
		return nil
	case k == "backing_file" || k == "backing_fmt":
		return amendRefusal(formats.ErrUnsupported, "You can use 'qemu-img rebase' instead.", "Cannot amend the backing file")
	case k == "data_file" || k == "data_file_raw":
		return nil
	case strings.HasPrefix(k, "encrypt."):
		for _, a := range AmendKeys {
			if a[0] == k {
				return nil
			}
		}
	}
	for _, s := range createOptions {
		if s.Name == k {
			return amendRefusal(formats.ErrInvalidOption, "This option is only supported for image creation", "Invalid parameter '%s'", k)
		}
	}
	return amendRefusal(formats.ErrInvalidOption, "", "Invalid parameter '%s'", k)
}

func parseOnOff(key, v string) (bool, error) {
	switch v {
	case "on", "yes", "true":
		return true, nil
	case "off", "no", "false":
		return false, nil
	}
	return false, amendRefusal(formats.ErrInvalidOption, "", "Parameter '%s' expects 'on' or 'off'", key)
}

// Amend changes options of the image as `qemu-img amend -o` does: compat
// (0.10 <-> 1.1; a downgrade turns zero clusters into unallocated or
// zero-filled ones), lazy_refcounts, refcount_bits (the refcount blocks
// and table are rewritten at the new width) and size. Every option is
// checked before anything changes. The encrypt.* key slot options need
// secrets: AmendWith.
func (img *Image) Amend(ctx context.Context, opts map[string]string) error {
	return img.AmendWith(ctx, opts, AmendSecrets{})
}

// AmendWith is Amend with the secrets the encrypt.* options name
// (encrypt.state=active|inactive, encrypt.new-secret, encrypt.old-secret,
// encrypt.keyslot, encrypt.iter-time: LUKS key slots added and erased as
// qemu's amend does, in its words when refused). The key slots change
// first, before any other option.
func (img *Image) AmendWith(ctx context.Context, opts map[string]string, s AmendSecrets) error {
	if err := img.writable(); err != nil {
		return err
	}
	p, err := img.planAmend(opts)
	if err != nil {
		return err
	}
	if p.version < img.hdr.Version {
		if err := img.canDowngrade(p.size); err != nil {
			return err
		}
	}
	img.mu.Lock()
	if p.crypt != nil {
		if err = img.flushLocked(); err == nil {
			err = img.amendCrypto(p.crypt, s)
		}
	}
	if err == nil && p.version > img.hdr.Version {
		err = img.rewriteHeader(func(h *header, e *extensions) { upgradeHeader(h, e) })
	}
	if err == nil && p.refcountBits != 1<<img.hdr.RefcountOrder {
		err = img.changeRefcountBits(p.refcountBits)
	}
	if err == nil && p.lazy != (img.hdr.CompatibleFeatures&compatLazyRefcounts != 0) && img.hdr.Version >= 3 {
		img.hdr.CompatibleFeatures ^= compatLazyRefcounts
		img.w.hdrDirty = true
		err = img.flushLocked()
	}
	if err == nil && (p.dataFile != nil || p.rawData != (img.hdr.AutoclearFeatures&autoclearRawData != 0)) {
		err = img.rewriteHeader(func(h *header, e *extensions) {
			if p.dataFile != nil {
				e.DataFile = *p.dataFile
			}
			h.AutoclearFeatures &^= autoclearRawData
			if p.rawData {
				h.AutoclearFeatures |= autoclearRawData
			}
		})
	}
	img.mu.Unlock()
	if err == nil && p.resize {
		err = img.Resize(ctx, p.size, true)
	}
	if err == nil && p.version < img.hdr.Version {
		img.mu.Lock()
		err = img.downgrade()
		img.mu.Unlock()
	}
	return err
}

// upgradeHeader turns a version 2 header into version 3 (qemu's layout:
// 112-byte header, feature name table).
func upgradeHeader(h *header, e *extensions) {
	h.Version, h.HeaderLength = 3, v3HeaderLength
	h.RefcountOrder = 4
	e.Features = nil // encode writes the standard table
}

// canDowngrade refuses what version 2 cannot express, in qemu's words
// and order (qcow2_downgrade). Bitmaps do not stop a downgrade (qemu's
// drops them, leaking their clusters; vdisk's frees them), nor do zero
// clusters in snapshots (expanded, as qemu's expand_zero_clusters_in_l1),
// nor zstd without compressed clusters (the type becomes zlib).
//
// size is the virtual size the image has when it is downgraded (amend
// resizes first): a snapshot of another size, or with more VM state than
// version 2's 32 bits hold, stops it as qemu's does.
func (img *Image) canDowngrade(size int64) error {
	h := &img.hdr
	if h.IncompatibleFeatures&incompatDataFile != 0 {
		return amendRefusal(formats.ErrUnsupported, "", "Cannot downgrade an image with a data file")
	}
	for _, sn := range img.snapshots {
		ds := int64(sn.DiskSize)
		if sn.DiskSize == 0 {
			ds = img.size // no extra data: qemu takes the image's size
		}
		if max(uint64(sn.VMStateSize), sn.VMStateSizeLarge) > 1<<32-1 || ds != size {
			return amendRefusal(formats.ErrUnsupported, "", "Internal snapshots prevent downgrade of image")
		}
	}
	if f := h.IncompatibleFeatures &^ (incompatDirty | incompatCompression); f != 0 {
		return amendRefusal(formats.ErrUnsupported, "", "Cannot downgrade an image with incompatible features %#x set", f)
	}
	if h.CompressionType != compressionZstd {
		return nil
	}
	// qemu looks at the active layer only, and would leave a snapshot's
	// zstd clusters to be read as zlib: vdisk refuses those too.
	compressed := func(t []uint64) bool {
		for _, e := range t {
			if e&oflagCompressed != 0 {
				return true
			}
		}
		return false
	}
	found := false
	err := img.eachL2(true, func(_ int64, t []uint64, _ bool) error {
		found = found || compressed(t)
		return nil
	})
	if err != nil {
		return err
	}
	if found {
		return amendRefusal(formats.ErrUnsupported, "", "Cannot downgrade an image with zstd compression type and existing compressed clusters")
	}
	return nil
}

// eachL2 calls fn once for every L2 table the active L1 table reaches
// (when withActive) and every one a snapshot reaches; active reports
// whether the active layer reaches it.
func (img *Image) eachL2(withActive bool, fn func(off int64, t []uint64, active bool) error) error {
	seen := map[int64]bool{}
	visit := func(l1 []uint64, active bool) error {
		for _, e := range l1 {
			off := int64(e & offsetMask)
			if off == 0 || seen[off] {
				continue
			}
			seen[off] = true
			t, err := img.l2(off)
			if err != nil {
				return err
			}
			if err := fn(off, t, active); err != nil {
				return err
			}
		}
		return nil
	}
	if withActive {
		if err := visit(img.l1, true); err != nil {
			return err
		}
	}
	for _, sn := range img.snapshots {
		l1, err := img.snapshotL1(sn)
		if err != nil {
			return err
		}
		if err := visit(l1, false); err != nil {
			return err
		}
	}
	return nil
}

// downgrade drops the bitmaps, expands the zero clusters of the active
// layer and of the snapshots (v2 has none) and rewrites the header as
// version 2 (caller holds img.mu).
func (img *Image) downgrade() error {
	if st := img.w.bms; st != nil && len(st.list) > 0 {
		st.list = nil
		if err := img.storeBitmaps(false); err != nil {
			return err
		}
	}
	cs := img.clusterSize
	clusters := (img.size + cs - 1) / cs
	zeros := make([]byte, cs)
	for vc := int64(0); vc < clusters; vc++ {
		e, _, err := img.lookup(vc)
		if err != nil {
			return err
		}
		if e&oflagCompressed != 0 || e&oflagZero == 0 {
			continue
		}
		host := int64(e & offsetMask)
		switch {
		case host != 0 && e&oflagCopied != 0:
			// Allocated zero cluster: the cluster is filled with zeros.
			if _, err := img.f.WriteAt(zeros, host); err != nil {
				return img.abort(err)
			}
			err = img.setEntryKeep(vc, uint64(host)|oflagCopied)
		case img.backingName == "":
			err = img.setEntry(vc, 0, 0)
		default:
			var h int64
			if h, err = img.allocClusters(1); err == nil {
				if _, werr := img.f.WriteAt(zeros, h); werr != nil {
					return img.abort(werr)
				}
				err = img.setEntry(vc, uint64(h)|oflagCopied, subAllocMask)
			}
		}
		if err != nil {
			return img.abort(err)
		}
	}
	if err := img.expandSnapshotZeros(zeros); err != nil {
		return img.abort(err)
	}
	return img.rewriteHeader(func(h *header, e *extensions) {
		h.Version, h.HeaderLength = 2, v2HeaderLength
		h.IncompatibleFeatures, h.CompatibleFeatures, h.AutoclearFeatures = 0, 0, 0
		h.RefcountOrder, h.CompressionType, h.Extra = 4, 0, nil
		e.Features, e.Bitmaps = nil, nil
	})
}

// expandSnapshotZeros rewrites the zero entries of the snapshots' L2
// tables in place, as qemu's expand_zero_clusters_in_l1: without a
// backing file an unallocated zero cluster becomes unallocated; with one,
// a new cluster of zeros, referenced as often as its table is; an
// allocated zero cluster is filled with zeros and kept. (The active layer
// was expanded first, so no table still shared with it has zero entries.)
func (img *Image) expandSnapshotZeros(zeros []byte) error {
	cs := img.clusterSize
	return img.eachL2(false, func(off int64, t []uint64, _ bool) error {
		changed := false
		for k, e := range t {
			if e&oflagCompressed != 0 || e&oflagZero == 0 {
				continue
			}
			host := int64(e & offsetMask)
			if host == 0 && img.backingName == "" {
				t[k], changed = 0, true
				continue
			}
			if host == 0 {
				h, err := img.allocClusters(1)
				if err != nil {
					return err
				}
				if refs := img.w.refcount(off / cs); refs > 1 {
					if err := img.addRef(h/cs, int64(refs)-1); err != nil {
						return err
					}
				}
				host = h
			}
			if _, err := img.f.WriteAt(zeros, host); err != nil {
				return err
			}
			t[k], changed = uint64(host), true
		}
		if changed {
			img.dirtyTable(off, t)
		}
		return nil
	})
}

// setEntryKeep replaces vc's entry without freeing the cluster the old
// entry used (the new entry uses the same cluster).
func (img *Image) setEntryKeep(vc int64, entry uint64) error {
	t, off, err := img.l2For(vc)
	if err != nil {
		return err
	}
	t[vc&(1<<img.l2Bits-1)] = entry
	img.w.dirtyL2[off] = true
	return nil
}

// rewriteHeader flushes everything, then rewrites cluster 0 with the
// header and extensions edit gives (caller holds img.mu).
func (img *Image) rewriteHeader(edit func(*header, *extensions)) error {
	if err := img.flushLocked(); err != nil {
		return err
	}
	if err := img.barrier(); err != nil {
		return err
	}
	saved, savedExt := img.hdr, img.ext
	edit(&img.hdr, &img.ext)
	buf, err := img.cluster0With(img.backingName, img.ext.BackingFormat)
	if err != nil {
		img.hdr, img.ext = saved, savedExt
		return err
	}
	if _, err := img.f.WriteAt(buf, 0); err != nil {
		img.w.err = err
		return fmt.Errorf("%s: rewriting the qcow2 header: %w", img.name, err)
	}
	img.w.hdrDirty = false
	return img.barrier()
}

// changeRefcountBits rewrites the refcount structure at a new entry width
// (caller holds img.mu): new refcount blocks and table are appended and
// written, the header switches to them in one write, then the old blocks
// and table are freed.
func (img *Image) changeRefcountBits(newBits uint) error {
	if err := img.flushLocked(); err != nil {
		return err
	}
	w := img.w
	cs := img.clusterSize
	newMax := ^uint64(0)
	if newBits < 64 {
		newMax = 1<<newBits - 1
	}
	for cl := int64(0); cl < w.fileEnd/cs; cl++ {
		if v := w.refcount(cl); v > newMax {
			return amendRefusal(formats.ErrLimit, "", "Cannot decrease refcount entry width to %d bits: Cluster at offset %#x has a refcount of %d", newBits, cl*cs, v)
		}
	}
	oldTable := w.reftable
	oldOff, oldClusters := int64(img.hdr.RefcountTableOffset), int64(img.hdr.RefcountTableClusters)
	w.refBits, w.maxRef, w.rcPerBlock = newBits, newMax, cs*8/int64(newBits)
	w.reftable = nil
	img.hdr.RefcountTableOffset, img.hdr.RefcountTableClusters = 0, 0
	clear(w.dirtyBlocks)
	for blk := int64(0); blk*w.rcPerBlock < w.fileEnd/cs; blk++ {
		if err := img.ensureBlock(blk); err != nil {
			return img.abort(err)
		}
	}
	img.hdr.RefcountOrder = uint32(bits.TrailingZeros(newBits))
	buf := make([]byte, cs)
	for blk, e := range w.reftable {
		if e&offsetMask == 0 {
			continue
		}
		img.encodeBlock(int64(blk), buf, false)
		if _, err := img.f.WriteAt(buf, int64(e&offsetMask)); err != nil {
			return img.abort(err)
		}
	}
	if err := img.writeTable(w.reftable, int64(img.hdr.RefcountTableOffset), nil); err != nil {
		return img.abort(err)
	}
	if err := img.barrier(); err != nil {
		return img.abort(err)
	}
	if _, err := img.f.WriteAt(img.hdr.encode(), 0); err != nil {
		return img.abort(err)
	}
	w.diskReftable = img.hdr.RefcountTableOffset
	clear(w.dirtyBlocks)
	clear(w.preDec)
	w.reftableDty, w.hdrDirty = false, false
	if err := img.barrier(); err != nil {
		return img.abort(err)
	}
	for _, e := range oldTable {
		if off := int64(e & offsetMask); off != 0 {
			if err := img.addRef(off/cs, -1); err != nil {
				return img.abort(err)
			}
		}
	}
	if err := img.freeRange(oldOff, oldClusters*cs); err != nil {
		return img.abort(err)
	}
	return img.flushLocked()
}

// planDataFile checks data_file and data_file_raw as qemu's amend does:
// only an image with an external data file can rename it (an empty name
// drops the name: the image then opens only when told its data file, as
// qemu's); data_file_raw can be cleared, never set on an existing image.
func (img *Image) planDataFile(opts map[string]string, p *amendPlan) error {
	raw := img.hdr.AutoclearFeatures&autoclearRawData != 0
	p.rawData = raw
	if v, ok := opts["data_file"]; ok {
		if img.hdr.IncompatibleFeatures&incompatDataFile == 0 {
			return amendRefusal(formats.ErrInvalidOption, "", "data-file can only be set for images that use an external data file")
		}
		p.dataFile = &v
	}
	if v, ok := opts["data_file_raw"]; ok {
		b, err := parseOnOff("data_file_raw", v)
		if err != nil {
			return err
		}
		if b && !raw {
			return amendRefusal(formats.ErrInvalidOption, "", "data-file-raw cannot be set on existing images")
		}
		p.rawData = b
	}
	return nil
}
