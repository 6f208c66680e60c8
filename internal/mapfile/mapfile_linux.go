//go:build linux

package mapfile

import (
	"errors"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Map maps length bytes of f at off, when every page of them is in the
// page cache (and prefaults them, MADV_POPULATE_READ, where the kernel
// has it); ok false means the caller reads instead.
func Map(f *os.File, off, length int64) (*Mapping, bool) {
	if length <= 0 || off < 0 {
		return nil, false
	}
	page := int64(os.Getpagesize())
	start := off / page * page
	size := off - start + length
	if size != int64(int(size)) {
		return nil, false
	}
	whole, err := unix.Mmap(int(f.Fd()), start, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE)
	if err != nil {
		return nil, false
	}
	if !resident(whole, page) {
		unix.Munmap(whole)
		return nil, false
	}
	_ = unix.Madvise(whole, unix.MADV_POPULATE_READ) // EINVAL before Linux 5.14: faults then
	m := &Mapping{bytes: whole[off-start:], pages: &pages{whole: whole}}
	runtime.AddCleanup(m, func(p *pages) { p.unmap() }, m.pages)
	return m, true
}

// resident says whether every page of the mapping is in the page cache.
func resident(b []byte, page int64) bool {
	pages := (int64(len(b)) + page - 1) / page
	vec := make([]byte, pages)
	_, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(unsafe.Pointer(&vec[0])))
	if errno != 0 {
		return false
	}
	for _, v := range vec {
		if v&1 == 0 {
			return false
		}
	}
	return true
}

// Close unmaps the range; its bytes must not be used after.
func (m *Mapping) Close() error {
	if m == nil || m.pages == nil {
		return nil
	}
	m.bytes = nil
	return m.pages.unmap()
}

func (p *pages) unmap() error {
	if p.whole == nil {
		return nil
	}
	err := unix.Munmap(p.whole)
	p.whole = nil
	return err
}

// IsFault says whether err is a system call's EFAULT: the kernel found a
// page of a buffer gone, as the pages of a mapping past the end of a file
// that shrank.
func IsFault(err error) bool { return errors.Is(err, unix.EFAULT) }
