package sparse

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/windows"
)

// Native returns Windows' Ops: the NTFS/ReFS sparse-file controls
// FSCTL_QUERY_ALLOCATED_RANGES, FSCTL_SET_SPARSE and FSCTL_SET_ZERO_DATA.
func Native() Ops { return windowsOps{} }

type windowsOps struct{}

// allocatedRange is FILE_ALLOCATED_RANGE_BUFFER {LARGE_INTEGER FileOffset;
// LARGE_INTEGER Length;}, the input and output of
// FSCTL_QUERY_ALLOCATED_RANGES.
type allocatedRange struct {
	Offset, Length int64
}

// zeroData is FILE_ZERO_DATA_INFORMATION {LARGE_INTEGER FileOffset;
// LARGE_INTEGER BeyondFinalZero;}.
type zeroData struct {
	Offset, BeyondFinalZero int64
}

// standardInfo is FILE_STANDARD_INFO, read with
// GetFileInformationByHandleEx(FileStandardInfo).
type standardInfo struct {
	AllocationSize, EndOfFile int64
	NumberOfLinks             uint32
	DeletePending, Directory  byte
}

// Runs asks FSCTL_QUERY_ALLOCATED_RANGES for the allocated ranges in
// [off, off+length); the gaps are holes. The call answers in batches
// (ERROR_MORE_DATA); a file system without sparse files (FAT) answers
// ERROR_INVALID_FUNCTION: one data run.
func (windowsOps) Runs(f *os.File, off, length int64) ([]Run, error) {
	if length <= 0 {
		return nil, nil
	}
	end := off + length
	var runs []Run
	pos := off
	out := make([]allocatedRange, 64)
	for pos < end {
		in := allocatedRange{Offset: pos, Length: end - pos}
		var got uint32
		err := windows.DeviceIoControl(windows.Handle(f.Fd()), windows.FSCTL_QUERY_ALLOCATED_RANGES,
			(*byte)(unsafe.Pointer(&in)), uint32(unsafe.Sizeof(in)),
			(*byte)(unsafe.Pointer(&out[0])), uint32(len(out))*uint32(unsafe.Sizeof(out[0])), &got, nil)
		more := errors.Is(err, windows.ERROR_MORE_DATA)
		if err != nil && !more {
			if errors.Is(err, windows.ERROR_INVALID_FUNCTION) || errors.Is(err, windows.ERROR_INVALID_PARAMETER) {
				return append(runs, Run{Offset: pos, Length: end - pos}), nil
			}
			return nil, fmt.Errorf("%s: FSCTL_QUERY_ALLOCATED_RANGES: %w", f.Name(), err)
		}
		n := int(got / uint32(unsafe.Sizeof(out[0])))
		for _, r := range out[:n] {
			start, stop := max(r.Offset, pos), min(r.Offset+r.Length, end)
			if stop <= start {
				continue
			}
			if start > pos {
				runs = append(runs, Run{Offset: pos, Length: start - pos, Hole: true})
			}
			runs = append(runs, Run{Offset: start, Length: stop - start})
			pos = stop
		}
		if !more || n == 0 {
			break
		}
	}
	if pos < end {
		runs = append(runs, Run{Offset: pos, Length: end - pos, Hole: true})
	}
	return runs, nil
}

// PunchHole marks f sparse (FSCTL_SET_SPARSE) and deallocates the range
// (FSCTL_SET_ZERO_DATA). On a file system without sparse files it is
// unsupported, and the caller writes zeros.
func (windowsOps) PunchHole(f *os.File, off, length int64) error {
	h := windows.Handle(f.Fd())
	var got uint32
	if err := windows.DeviceIoControl(h, windows.FSCTL_SET_SPARSE, nil, 0, nil, 0, &got, nil); err != nil {
		return winError(f, "FSCTL_SET_SPARSE", err)
	}
	in := zeroData{Offset: off, BeyondFinalZero: off + length}
	err := windows.DeviceIoControl(h, windows.FSCTL_SET_ZERO_DATA,
		(*byte)(unsafe.Pointer(&in)), uint32(unsafe.Sizeof(in)), nil, 0, &got, nil)
	return winError(f, "FSCTL_SET_ZERO_DATA", err)
}

// Allocate raises the allocation size (FileAllocationInfo) of a non-sparse
// file to cover off+length; NTFS then holds clusters for the whole file. A
// sparse file keeps its holes (FileAllocationInfo does not fill them), so
// reserving blocks in one is unsupported.
func (windowsOps) Allocate(f *os.File, off, length int64) error {
	h := windows.Handle(f.Fd())
	var info windows.ByHandleFileInformation
	if err := windows.GetFileInformationByHandle(h, &info); err != nil {
		return fmt.Errorf("%s: GetFileInformationByHandle: %w", f.Name(), err)
	}
	if info.FileAttributes&windows.FILE_ATTRIBUTE_SPARSE_FILE != 0 {
		return unsupported(f, "reserving blocks in a sparse file")
	}
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := max(st.Size(), off+length)
	err = windows.SetFileInformationByHandle(h, windows.FileAllocationInfo,
		(*byte)(unsafe.Pointer(&size)), uint32(unsafe.Sizeof(size)))
	return winError(f, "SetFileInformationByHandle(FileAllocationInfo)", err)
}

// Allocated is the file's allocation size (FILE_STANDARD_INFO), which counts
// only the allocated clusters of a sparse file.
func (windowsOps) Allocated(f *os.File) (int64, error) {
	var info standardInfo
	err := windows.GetFileInformationByHandleEx(windows.Handle(f.Fd()), windows.FileStandardInfo,
		(*byte)(unsafe.Pointer(&info)), uint32(unsafe.Sizeof(info)))
	if err != nil {
		return 0, fmt.Errorf("%s: GetFileInformationByHandleEx(FileStandardInfo): %w", f.Name(), err)
	}
	return info.AllocationSize, nil
}

func winError(f *os.File, call string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, windows.ERROR_INVALID_FUNCTION), errors.Is(err, windows.ERROR_NOT_SUPPORTED), errors.Is(err, windows.ERROR_INVALID_PARAMETER):
		return fmt.Errorf("%s: %s: %w (%v)", f.Name(), call, errors.ErrUnsupported, err)
	}
	return fmt.Errorf("%s: %s: %w", f.Name(), call, err)
}
