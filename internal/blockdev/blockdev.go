// Package blockdev reads the size of a disk device, per OS:
//
//   - Linux: ioctl BLKGETSIZE64 on a block device;
//   - macOS: ioctl DKIOCGETBLOCKCOUNT × DKIOCGETBLOCKSIZE on /dev/diskN or
//     /dev/rdiskN;
//   - FreeBSD: ioctl DIOCGMEDIASIZE (FreeBSD disks are character devices);
//   - Windows: DeviceIoControl IOCTL_DISK_GET_LENGTH_INFO on \\.\PhysicalDriveN
//     or a volume \\.\C:.
//
// Elsewhere Size reports errors.ErrUnsupported. A disk's size is not its
// file size (stat says 0), so a disk opened as an image needs this.
package blockdev

import (
	"os"
	"runtime"
	"strings"
)

// IsDevicePath reports whether path names a Windows device (\\.\ or //./),
// which os.Stat cannot describe; callers open such paths as disks. Always
// false on other systems, where such a name is an ordinary file name.
func IsDevicePath(path string) bool {
	return runtime.GOOS == "windows" && (strings.HasPrefix(path, `\\.\`) || strings.HasPrefix(path, `//./`))
}

// IsDisk reports whether the open file f is a disk: a block device, or a
// device that answers Size (FreeBSD's disks and macOS's raw /dev/rdiskN are
// character devices; Windows' \\.\ paths have no Unix mode). Other
// character devices (terminals, /dev/zero) are not.
func IsDisk(f *os.File) bool {
	if st, err := f.Stat(); err == nil && !IsDevicePath(f.Name()) {
		mode := st.Mode()
		if mode&os.ModeDevice == 0 {
			return false
		}
		if mode&os.ModeCharDevice == 0 {
			return true
		}
	}
	_, err := Size(f)
	return err == nil
}
