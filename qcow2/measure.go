package qcow2

import (
	"context"
	"github.com/vdiskio/vdisk/formats"
)

// measure computes `qemu-img measure -O qcow2` as qemu does
// (qcow2_measure): fully-allocated is the size of a preallocated image;
// required replaces its data with the clusters the source allocates.
func measure(ctx context.Context, req formats.MeasureRequest) (formats.Measurement, error) {
	o, err := decodeOptions(req.Options)
	if err != nil {
		return formats.Measurement{}, err
	}
	p, err := parseParams("measure", o)
	if err != nil {
		return formats.Measurement{}, err
	}
	cs := int64(1) << p.clusterBits
	size := req.Size
	if req.Source != nil {
		size = req.Source.Size()
	}
	virtual := roundUp(size, cs)
	required := int64(0) // --size: only metadata is required
	if p.prealloc == "full" || p.prealloc == "falloc" {
		required = virtual
	} else if req.Source != nil {
		required, err = allocatedBytes(req.Source, cs)
		if err != nil {
			return formats.Measurement{}, err
		}
	}
	full := preallocSize(virtual, cs, p.refcountOrder, p.extL2)
	crypto, err := encryptHeaderBytes(o.Encrypt, cs)
	if err != nil {
		return formats.Measurement{}, err
	}
	full += crypto
	m := formats.Measurement{Required: full - virtual + required, FullyAllocated: full, Bitmaps: -1}
	if p.version >= 3 && req.Source != nil && req.Source.Format() == Name {
		m.Bitmaps = 0
		if src, ok := req.Source.(*Image); ok {
			m.Bitmaps = bitmapsSize(src, cs)
		}
	}
	return m, nil
}

// allocatedBytes is what the source's data needs in clusters of cs bytes,
// counted as qemu's measure does over the flattened chain.
func allocatedBytes(src formats.Image, cs int64) (int64, error) {
	var required int64
	size := src.Size()
	nextFree := int64(0) // qemu extends each data run to the end of its cluster
	for start := int64(0); start < size; {
		window := min(size-start, 1<<32)
		exts, err := formats.ChainExtents(src, start, window)
		if err != nil {
			return 0, err
		}
		for _, e := range exts {
			if e.Kind != formats.Data {
				continue
			}
			off := max(e.Offset, nextFree)
			if off >= e.End() {
				continue
			}
			end := roundUp(e.End(), cs)
			required += end - (off - off%cs)
			nextFree = end
		}
		start += window
	}
	return required, nil
}

// preallocSize is qcow2_calc_prealloc_size: header, L2 tables, L1 table and
// refcount structures for a fully allocated image, plus the data.
func preallocSize(virtual, cs int64, refcountOrder uint32, extL2 bool) int64 {
	l2e := int64(8)
	if extL2 {
		l2e = 16
	}
	meta := cs
	nl2e := roundUp(virtual/cs, cs/l2e)
	meta += nl2e * l2e
	nl1e := roundUp(nl2e*l2e/cs, cs/8)
	meta += nl1e * 8
	meta += refcountMetadataSize((meta+virtual)/cs, cs, refcountOrder)
	return meta + virtual
}

// refcountMetadataSize is qcow2_refcount_metadata_size: the fixed point of
// refcount blocks and table clusters needed to count clusters and themselves.
func refcountMetadataSize(clusters, cs int64, order uint32) int64 {
	perTableCluster := cs / 8
	perBlock := cs * 8 / (int64(1) << order)
	var table, blocks, n, last int64
	for {
		last = n
		blocks = (clusters + table + blocks + perBlock - 1) / perBlock
		table = (blocks + perTableCluster - 1) / perTableCluster
		n = clusters + blocks + table
		if n == last {
			break
		}
	}
	return (blocks + table) * cs
}

// bitmapsSize is qemu's estimate of the space the source's persistent
// bitmaps need in the target: each bitmap fully allocated, its table, and
// the directory.
func bitmapsSize(src *Image, cs int64) int64 {
	var size, dir int64
	for _, b := range src.bitmapInfo() {
		name, gran := b.Name, b.Granularity
		if gran <= 0 {
			continue
		}
		bits := (src.Size() + gran - 1) / gran
		clusters := ((bits+7)/8 + cs - 1) / cs
		size += clusters*cs + roundUp(clusters*8, cs)
		dir += roundUp(24+int64(len(name)), 8)
	}
	return size + roundUp(dir, cs)
}
