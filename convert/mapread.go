package convert

import (
	"errors"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/mapfile"
)

// A data chunk of a source that stores it verbatim in an OS file (raw,
// a flat VMDK extent, a fixed VHD) and whose pages are all in the page
// cache is not read into a chunk buffer: it is mapped, scanned for zeros
// and written from the page cache's own pages, which saves read(2)'s copy
// of every byte (a fifth of the CPU time of a raw→raw or raw→qcow2 from a
// warm cache). A chunk not wholly cached is read, as a mapping's page
// faults would fetch it from the disk a page at a time.

// mapsReads says whether chunks may be mapped: the source stores ranges
// verbatim, and nothing needs the bytes in a buffer of ours (a hash reads
// the buffer after the writes; salvage retries reads of bad sectors).
func (c *copier) mapsReads() bool {
	if c.opts.Hash != nil || c.opts.Salvage {
		return false
	}
	_, ok := c.src.(formats.RawRanger)
	return ok
}

// mapChunk maps the source's [off, off+length), or returns nil when it
// is not stored verbatim in one OS file or not wholly in the page cache.
func (c *copier) mapChunk(off, length int64) *mapfile.Mapping {
	if !c.mapReads {
		return nil
	}
	f, fileOff, n := c.src.(formats.RawRanger).RawRange(off)
	if n < length || !isOSFile(f) {
		return nil
	}
	m, ok := mapfile.Map(f.(formats.OSFiler).OSFile(), fileOff, length)
	if !ok {
		return nil
	}
	return m
}

// splitMapped turns a task's data into writes from a mapping (done by
// split, which may fault if the file shrank under the mapping); on a fault
// the mapping goes and the chunk is read into buf instead, the read then
// reporting what happened to the source.
func (c *copier) splitMapped(t *task, buf []byte, res *result, split func([]byte) error) error {
	if m := c.mapChunk(t.off, t.length); m != nil {
		var err error
		if ferr := mapfile.Guard(func() { err = split(m.Bytes()) }); ferr == nil {
			res.mapping = m
			return err
		} else if !errors.Is(ferr, mapfile.ErrFault) {
			m.Close()
			return ferr
		}
		m.Close()
		res.ops, res.release = nil, nil
	}
	if err := c.read(buf, t.off); err != nil {
		return err
	}
	return split(buf)
}

// faultedWrite explains a write that failed on a mapped chunk's vanished
// pages (EFAULT): the source shrank under the mapping, which a read of
// the chunk reports as such (ErrSourceChanged); if the read still works,
// the write's own error stands.
func (c *copier) faultedWrite(t *task, res *result, werr error) error {
	if res.buf == nil {
		return werr
	}
	if err := c.read(res.buf[:t.length], t.off); err != nil {
		return err
	}
	return werr
}
