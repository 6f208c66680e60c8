// Package blockcache keeps decoded or fetched blocks (decompressed xz
// blocks, zstd frames, HTTP ranges) within a byte budget: least recently
// used first out, each block loaded once however many readers want it at
// the same time (the first claims it, the others wait for it).
package blockcache

import "sync"

// Cache keeps decoded blocks within a byte budget, least recently
// used first out; a block being decoded is claimed once and waited for by
// the other readers.
type Cache struct {
	mu sync.Mutex
	// Budget is the bytes the entries may hold (at least two are kept).
	Budget  int64
	held    int64 // bytes of the entries, loading ones included
	tick    uint64
	entries map[int]*Entry
}

type Entry struct {
	done    chan struct{}
	data    []byte
	err     error
	bytes   int64
	lastUse uint64
}

// Claim returns block i's entry and whether the caller must load it. With
// onlyIfRoom (read-ahead), a block not cached is claimed only when it fits
// the budget without evicting, else claim returns nil.
func (c *Cache) Claim(i int, bytes int64, onlyIfRoom bool) (*Entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[int]*Entry{}
	}
	c.tick++
	if e, ok := c.entries[i]; ok {
		e.lastUse = c.tick
		return e, false
	}
	if onlyIfRoom && c.held+bytes > c.Budget {
		return nil, false
	}
	return c.add(i, bytes), true
}

// ClaimAhead is Claim for read-ahead of block i while block current is
// read: to make room it drops loaded blocks before current (a sequential
// reader is done with them), oldest first; without room it returns nil.
func (c *Cache) ClaimAhead(i int, bytes int64, current int) (*Entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[int]*Entry{}
	}
	c.tick++
	if e, ok := c.entries[i]; ok {
		return e, false
	}
	for c.held+bytes > c.Budget {
		victim, oldest := -1, ^uint64(0)
		for j, e := range c.entries {
			if j < current && isDone(e) && e.lastUse < oldest {
				victim, oldest = j, e.lastUse
			}
		}
		if victim < 0 {
			return nil, false
		}
		c.held -= c.entries[victim].bytes
		delete(c.entries, victim)
	}
	return c.add(i, bytes), true
}

// add makes the entry of block i, to be loaded by the caller.
func (c *Cache) add(i int, bytes int64) *Entry {
	e := &Entry{done: make(chan struct{}), bytes: bytes, lastUse: c.tick}
	c.entries[i] = e
	c.held += bytes
	c.evict(i)
	return e
}

// Publish stores the result of a load; a failed block leaves the cache so
// that a later read tries again.
func (c *Cache) Publish(i int, e *Entry, data []byte, err error) {
	c.mu.Lock()
	e.data, e.err = data, err
	if err != nil && c.entries[i] == e {
		delete(c.entries, i)
		c.held -= e.bytes
	}
	c.mu.Unlock()
	close(e.done)
}

// evict drops least recently used, loaded entries other than keep until
// the budget holds or only two entries remain.
func (c *Cache) evict(keep int) {
	for c.held > c.Budget && len(c.entries) > 2 {
		victim, oldest := -1, ^uint64(0)
		for i, e := range c.entries {
			if i == keep || !isDone(e) {
				continue
			}
			if e.lastUse < oldest {
				victim, oldest = i, e.lastUse
			}
		}
		if victim < 0 {
			return
		}
		c.held -= c.entries[victim].bytes
		delete(c.entries, victim)
	}
}

func isDone(e *Entry) bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

// Wait waits for the entry's load and returns its bytes or error.
func (e *Entry) Wait() ([]byte, error) {
	<-e.done
	return e.data, e.err
}
