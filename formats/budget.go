package formats

import (
	"fmt"
	"sync"
)

// Budget is the metadata memory one open image may use, its whole backing
// chain and every extent file included: the tables a driver loads whole (L1
// and refcount tables, BATs, grain directories, block maps, a replayed log)
// and the entries its bounded caches hold (L2 tables, grain tables, BAT
// pages, sector bitmaps). A driver charges a table before it allocates it
// and refunds what it frees, so a hostile image (the same extent named 200
// times, a 1000-layer chain, a huge log) ends in one ErrLimit error instead
// of exhausting memory.
//
// formats.OpenFile gives each image it opens a new Budget of
// Limits.MaxMetadataBytes unless OpenOptions.Budget names one; backing
// files and extents share their top image's. Several images may share one
// Budget to be bounded together. A Budget is safe for concurrent use.
type Budget struct {
	mu    sync.Mutex
	limit int64 // bytes
	used  int64 // bytes charged and not refunded
	peak  int64
}

// NewBudget returns a budget of limitBytes (DefaultMaxMetadataBytes when
// limitBytes <= 0).
func NewBudget(limitBytes int64) *Budget {
	if limitBytes <= 0 {
		limitBytes = DefaultMaxMetadataBytes
	}
	return &Budget{limit: limitBytes}
}

// Charge reserves bytes for a structure of file (at offset, -1 when not
// known) before the caller allocates it. Past the limit it reserves nothing
// and returns an ErrLimit naming the structure, its size and the budget.
func (b *Budget) Charge(file, structure string, offset, bytes int64) error {
	if b.TryCharge(bytes) {
		return nil
	}
	return Limitf(file, structure, offset, "loading %d more bytes of metadata would exceed the %s metadata budget of this image and its chain (%d bytes in use; raise it with %s or Limits.MaxMetadataBytes)",
		bytes, formatBytes(b.Limit()), b.Used(), MetadataFlag)
}

// TryCharge reserves bytes when they fit and reports whether they did.
// Caches use it: when it fails they evict their own entries and try again.
func (b *Budget) TryCharge(bytes int64) bool {
	if b == nil || bytes <= 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if bytes > b.limit-b.used {
		return false
	}
	b.used += bytes
	b.peak = max(b.peak, b.used)
	return true
}

// Refund returns bytes charged earlier (a table freed, a cache entry evicted).
func (b *Budget) Refund(bytes int64) {
	if b == nil || bytes <= 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used = max(0, b.used-bytes)
}

// Used is the number of bytes charged and not refunded.
func (b *Budget) Used() int64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// Peak is the largest Used has been.
func (b *Budget) Peak() int64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.peak
}

// Limit is the budget's size in bytes.
func (b *Budget) Limit() int64 {
	if b == nil {
		return DefaultMaxMetadataBytes
	}
	return b.limit
}

// MetadataFlag is the CLI flag that sets Limits.MaxMetadataBytes; budget
// errors name it.
const MetadataFlag = "--max-metadata"

// EnsureBudget returns o's Budget, first giving o a new one of
// o.Limits.MaxMetadataBytes when it has none. Drivers call it at the start
// of Open, so that the options they pass to OpenReference and to extent
// opens carry the budget down the chain.
func (o *OpenOptions) EnsureBudget() *Budget {
	if o.Budget == nil {
		o.Budget = NewBudget(o.Limits.MaxMetadataBytes)
	}
	return o.Budget
}

// formatBytes prints n as "256 MiB" when it is a whole number of MiB, else
// as "N-byte".
func formatBytes(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d-byte", n)
}
