package blockdev

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// sys/disk.h: _IOR('d', 24, uint32_t) and _IOR('d', 25, uint64_t).
const (
	dkiocGetBlockSize  = 0x40046418
	dkiocGetBlockCount = 0x40086419
)

// Size is the size in bytes of the disk f: DKIOCGETBLOCKCOUNT blocks of
// DKIOCGETBLOCKSIZE bytes. IoctlGetInt reads into a zeroed 8-byte int, so
// the 4-byte block size lands in its low half (amd64 and arm64 are
// little-endian).
func Size(f *os.File) (int64, error) {
	fd := int(f.Fd())
	blockSize, err := unix.IoctlGetInt(fd, dkiocGetBlockSize)
	if err != nil {
		return 0, fmt.Errorf("%s: DKIOCGETBLOCKSIZE: %w", f.Name(), err)
	}
	blocks, err := unix.IoctlGetInt(fd, dkiocGetBlockCount)
	if err != nil {
		return 0, fmt.Errorf("%s: DKIOCGETBLOCKCOUNT: %w", f.Name(), err)
	}
	blockSize = int(uint32(blockSize))
	if blockSize <= 0 || blocks < 0 || blocks > (1<<63-1)/blockSize {
		return 0, fmt.Errorf("%s: disk of %d blocks of %d bytes: size out of range", f.Name(), blocks, blockSize)
	}
	return int64(blocks) * int64(blockSize), nil
}
