package qcow2

import "github.com/vdiskio/vdisk/formats"

// MakeEmpty unmaps every cluster of the active layer (formats.Emptier): the
// image reads through to its backing file again. Data clusters are freed
// (refcount decremented; a snapshot's clusters stay), L2 tables are kept.
func (img *Image) MakeEmpty() error {
	if err := img.dataWritable(); err != nil {
		return err
	}
	if len(img.snapshots) > 0 {
		return formats.Unsupportedf(img.name, "emptying a qcow2 image with internal snapshots")
	}
	img.mu.Lock()
	defer img.mu.Unlock()
	if err := img.markDirty(0, img.size); err != nil {
		return err
	}
	if err := img.discardTail(0); err != nil {
		return err
	}
	return img.flushLocked()
}
