package qcow2

import (
	"fmt"

	"github.com/vdiskio/vdisk/formats"
)

// SetBacking rewrites the backing file name and the backing format
// extension in cluster 0 (formats.BackingSetter). The data and metadata
// written so far are flushed and synced first, so the header rewrite is the
// last write: an interruption before it leaves the old link. Cluster 0
// holds the header, the extensions and the name, as qemu lays them out; a
// name that does not fit there (or exceeds qemu's 1023 bytes) is refused.
func (img *Image) SetBacking(name, format string, backing formats.Image) error {
	if err := img.writable(); err != nil {
		return err
	}
	if name == "" {
		format = ""
	}
	img.mu.Lock()
	defer img.mu.Unlock()
	if err := img.flushLocked(); err != nil {
		return err
	}
	if err := formats.Sync(img.f); err != nil {
		return fmt.Errorf("%s: syncing before the header rewrite: %w", img.name, err)
	}
	buf, err := img.cluster0With(name, format)
	if err != nil {
		return err
	}
	if _, err := img.f.WriteAt(buf, 0); err != nil {
		return fmt.Errorf("%s: rewriting the qcow2 header: %w", img.name, err)
	}
	if err := formats.Sync(img.f); err != nil {
		return fmt.Errorf("%s: syncing the qcow2 header: %w", img.name, err)
	}
	if img.backing != nil && img.backing != backing {
		img.backing.Close()
	}
	img.backing, img.backingName, img.backingPath, img.backingFmt = backing, name, name, format
	if format == "" && backing != nil {
		img.backingFmt = backing.Format()
	}
	return nil
}

// cluster0With encodes the header, the extensions and the backing name as
// they are after a link change, padded with zeros over the old name. It
// updates img.hdr and img.ext only when the result fits.
func (img *Image) cluster0With(name, format string) ([]byte, error) {
	if len(name) > maxBackingName {
		return nil, fmt.Errorf("%s: %w: backing file name of %d bytes exceeds %d", img.name, formats.ErrInvalidOption, len(name), maxBackingName)
	}
	hdr, ext := img.hdr, img.ext
	ext.BackingFormat = format
	v3 := hdr.Version >= 3
	exts := ext.encode(v3)
	hdrLen := len(hdr.encode())
	if int64(hdrLen+len(exts)+len(name)) > img.clusterSize && v3 {
		ext.Features = []featureName{} // leave out the optional feature name table
		exts = ext.encodeWithoutFeatures()
	}
	if int64(hdrLen+len(exts)+len(name)) > img.clusterSize {
		return nil, fmt.Errorf("%s: %w: backing file name of %d bytes does not fit in the first cluster", img.name, formats.ErrInvalidOption, len(name))
	}
	hdr.BackingFileOffset, hdr.BackingFileSize = 0, 0
	if name != "" {
		hdr.BackingFileOffset, hdr.BackingFileSize = uint64(hdrLen+len(exts)), uint32(len(name))
	}
	buf := append(append(hdr.encode(), exts...), name...)
	if old := int(img.hdr.BackingFileOffset) + int(img.hdr.BackingFileSize); img.hdr.BackingFileOffset != 0 && old > len(buf) {
		buf = append(buf, make([]byte, old-len(buf))...)
	}
	img.hdr, img.ext = hdr, ext
	return buf, nil
}

// encodeWithoutFeatures encodes the extensions without the feature name
// table (which encode adds to every version 3 image).
func (e extensions) encodeWithoutFeatures() []byte {
	e.Features = nil
	return e.encode(false)
}
