package blockdev

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/windows"
)

// ioctlDiskGetLengthInfo is IOCTL_DISK_GET_LENGTH_INFO: CTL_CODE(
// IOCTL_DISK_BASE 7, 0x17, METHOD_BUFFERED, FILE_READ_ACCESS).
const ioctlDiskGetLengthInfo = 0x7405C

// Size is the size in bytes of the disk or volume f: GET_LENGTH_INFORMATION
// {LARGE_INTEGER Length} from IOCTL_DISK_GET_LENGTH_INFO.
func Size(f *os.File) (int64, error) {
	var length int64
	var got uint32
	err := windows.DeviceIoControl(windows.Handle(f.Fd()), ioctlDiskGetLengthInfo, nil, 0,
		(*byte)(unsafe.Pointer(&length)), uint32(unsafe.Sizeof(length)), &got, nil)
	if err != nil {
		return 0, fmt.Errorf("%s: IOCTL_DISK_GET_LENGTH_INFO: %w", f.Name(), err)
	}
	return length, nil
}
