//go:build linux

package formats

import (
	"os"

	"golang.org/x/sys/unix"
)

// Prefetch asks the kernel to start reading [off, off+length) into the page
// cache (posix_fadvise WILLNEED: in base pages on Linux 6.x, where its own
// read-ahead takes large folios) and returns without waiting for the reads.
// A range whose every page is cached already (cachestat, Linux 6.5+) is
// left alone and reported so.
func (o *osFile) Prefetch(off, length int64) bool {
	if off < 0 || length <= 0 {
		return false
	}
	fd := int(o.f.Fd())
	page := int64(os.Getpagesize())
	pages := (off+length+page-1)/page - off/page
	var st unix.Cachestat_t
	err := unix.Cachestat(uint(fd), &unix.CachestatRange{Off: uint64(off), Len: uint64(length)}, &st, 0)
	if err == nil && st.Cache >= uint64(pages) {
		return false
	}
	return unix.Fadvise(fd, off, length, unix.FADV_WILLNEED) == nil
}
