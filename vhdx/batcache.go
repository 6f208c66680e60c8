package vhdx

import (
	"encoding/binary"
	"sync"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
)

// batPageEntries is how many BAT entries one cached page holds (64 KiB).
const batPageEntries = 8192

// batCache holds pages of a BAT too large to load whole (more than
// Limits.MaxTableBytes), at most about cacheBytes of them, evicting the
// oldest. Each page is validated when loaded, so a bad entry fails the
// reads that need its page rather than the open. Every page it holds is
// charged to the image's metadata budget; when the budget is spent it drops
// its own oldest pages first, and a page that still does not fit is used
// once, not kept.
type batCache struct {
	img      *Image
	budget   *formats.Budget
	mu       sync.Mutex
	pages    map[int64][]uint64
	fifo     []int64
	maxPages int
}

func newBATCache(img *Image, cacheBytes int64, budget *formats.Budget) *batCache {
	return &batCache{img: img, budget: budget, pages: map[int64][]uint64{},
		maxPages: int(max(4, cacheBytes/(batPageEntries*batEntrySize)))}
}

// dropOldest evicts the oldest page (caller holds c.mu).
func (c *batCache) dropOldest() {
	c.budget.Refund(int64(len(c.pages[c.fifo[0]])) * batEntrySize)
	delete(c.pages, c.fifo[0])
	c.fifo = c.fifo[1:]
}

// get returns BAT entry i.
func (c *batCache) get(i int64) (uint64, error) {
	pg := i / batPageEntries
	c.mu.Lock()
	p, ok := c.pages[pg]
	c.mu.Unlock()
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
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pages[pg]; !ok {
		if len(c.fifo) >= c.maxPages {
			c.dropOldest()
		}
		for !c.budget.TryCharge(int64(len(p)) * batEntrySize) {
			if len(c.fifo) == 0 {
				return p, nil
			}
			c.dropOldest()
		}
		c.pages[pg] = p
		c.fifo = append(c.fifo, pg)
	}
	return p, nil
}
