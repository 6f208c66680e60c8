//go:build linux

package formats

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// cachedPages is how many pages of [off, off+length) of f are in the page
// cache (cachestat, Linux 6.5+).
func cachedPages(t *testing.T, f *os.File, off, length int64) uint64 {
	t.Helper()
	var st unix.Cachestat_t
	err := unix.Cachestat(uint(f.Fd()), &unix.CachestatRange{Off: uint64(off), Len: uint64(length)}, &st, 0)
	if err != nil {
		t.Skipf("cachestat: %v (Linux 6.5+)", err)
	}
	return st.Cache
}

// TestPrefetchFillsPageCache: a prefetch hint on an OS file puts the range
// in the page cache (its pages are there when Prefetch returns, read or
// being read) and nothing past it; a second one finds nothing to read.
func TestPrefetchFillsPageCache(t *testing.T) {
	const half = 4 << 20
	path := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(path, make([]byte, 2*half), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	if n := cachedPages(t, f, 0, 2*half); n != 0 {
		t.Skipf("%d pages stay cached after FADV_DONTNEED (a file system in memory?)", n)
	}
	of, err := OpenOSFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer of.Close()
	if !of.(Prefetcher).Prefetch(0, half) {
		t.Errorf("Prefetch of an uncached range says there was nothing to read")
	}
	if n := cachedPages(t, f, 0, half); n != half/uint64(os.Getpagesize()) {
		t.Errorf("%d pages of the hinted range are cached, want all %d", n, half/os.Getpagesize())
	}
	if of.(Prefetcher).Prefetch(0, half) {
		t.Errorf("Prefetch of a cached range says it had something to read")
	}
	if n := cachedPages(t, f, half, half); n != 0 {
		t.Errorf("%d pages past the hinted range are cached", n)
	}
}
