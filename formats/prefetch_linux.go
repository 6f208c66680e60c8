//go:build linux

package formats

import "golang.org/x/sys/unix"

// Prefetch asks the kernel to start reading [off, off+length) into the page
// cache (posix_fadvise WILLNEED: in base pages on Linux 6.x, where its own
// read-ahead takes large folios) and returns without waiting for the reads.
func (o *osFile) Prefetch(off, length int64) {
	if off < 0 || length <= 0 {
		return
	}
	_ = unix.Fadvise(int(o.f.Fd()), off, length, unix.FADV_WILLNEED) // a hint: a refusal changes nothing
}
