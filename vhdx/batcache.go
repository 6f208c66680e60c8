package vhdx

import (
	"encoding/binary"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/cache"
	"github.com/vdiskio/vdisk/internal/fileio"
)

// batPageEntries is how many BAT entries one cached page holds (64 KiB).
const batPageEntries = 8192

// batCache holds pages of a BAT too large to load whole (more than
// Limits.MaxTableBytes), at most about cacheBytes of them, least recently
// used dropped first (internal/cache). Each page is validated when loaded,
// so a bad entry fails the reads that need its page rather than the open.
// Every page it holds is charged to the image's metadata budget; when the
// budget is spent it drops its own oldest pages first, and a page that
// still does not fit is used once, not kept.
type batCache struct {
	img   *Image
	pages *cache.Cache[int64, []uint64]
}

func newBATCache(img *Image, cacheBytes int64, budget *formats.Budget) *batCache {
	return &batCache{img: img, pages: cache.New[int64, []uint64](int(max(4, cacheBytes/(batPageEntries*batEntrySize))), budget,
		func(p []uint64) int64 { return int64(len(p)) * batEntrySize })}
}

// get returns BAT entry i.
func (c *batCache) get(i int64) (uint64, error) {
	pg := i / batPageEntries
	p, ok := c.pages.Get(pg)
	if !ok {
		var err error
		if p, err = c.load(pg); err != nil {
			return 0, err
		}
	}
	return p[i%batPageEntries], nil
}

// load reads, validates and caches page pg.
func (c *batCache) load(pg int64) ([]uint64, error) {
	img := c.img
	first := pg * batPageEntries
	n := min(batPageEntries, img.batEntries()-first)
	raw := make([]byte, n*batEntrySize)
	if err := fileio.ReadPadded(img.r, raw, img.batOff+first*batEntrySize); err != nil {
		return nil, err
	}
	p := make([]uint64, n)
	for k := range p {
		p[k] = binary.LittleEndian.Uint64(raw[k*batEntrySize:])
	}
	// A PARTIALLY_PRESENT entry's bitmap entry may sit on a later page: read
	// just that entry (it is validated with its own page), so that loading
	// one page never loads others.
	lookup := func(j int64) (uint64, error) {
		if j/batPageEntries == pg {
			return p[j-first], nil
		}
		var b [batEntrySize]byte
		if err := fileio.ReadPadded(img.r, b[:], img.batOff+j*batEntrySize); err != nil {
			return 0, err
		}
		return binary.LittleEndian.Uint64(b[:]), nil
	}
	for k, e := range p {
		if err := img.checkEntry(first+int64(k), e, lookup); err != nil {
			return nil, err
		}
	}
	c.pages.Put(pg, p, false)
	return p, nil
}
