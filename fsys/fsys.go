// Package fsys finds and opens the file systems inside a disk image, read
// only, as io/fs file systems: ext2/3/4, FAT12/16/32, NTFS and ISO 9660.
// Others are recognised by their signatures and refused by name (XFS,
// btrfs, LVM physical volumes, LUKS, swap, exFAT, ...).
//
// A disk holds a file system at offset 0 (a "superfloppy", a partition
// image) or a partition table whose partitions each may hold one; Open takes
// the whole image or one partition (see package partition). Walk, Extract
// and Tar copy files out without ever writing outside the destination.
package fsys

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/fsys/ext4"
	"github.com/vdiskio/vdisk/fsys/fat"
	"github.com/vdiskio/vdisk/fsys/ntfs"
	"github.com/vdiskio/vdisk/iso"
)

// FS is an open file system.
type FS interface {
	fs.FS
	fs.ReadDirFS
	fs.StatFS
	fs.ReadLinkFS
}

// Volume is a file system with its type and label.
type Volume struct {
	FS
	Type  string // blkid's TYPE name: "ext4", "vfat", "ntfs", "iso9660"
	Label string
}

// ErrNoFileSystem: nothing this package reads was found.
var ErrNoFileSystem = errors.New("no file system found")

// probeBytes is how much of a volume detection reads.
const probeBytes = 68 << 10

// Detect names the file system at the start of r (blkid's TYPE names), or
// "" when none is recognised.
func Detect(r io.ReaderAt, size int64) string {
	b := make([]byte, min(probeBytes, size))
	n, _ := r.ReadAt(b, 0)
	b = b[:n]
	at := func(off int, magic string) bool {
		return off+len(magic) <= len(b) && string(b[off:off+len(magic)]) == magic
	}
	switch {
	case at(3, "NTFS    "):
		return "ntfs"
	case at(3, "EXFAT   "):
		return "exfat"
	case at(0, "XFSB"):
		return "xfs"
	case at(0, "LUKS\xba\xbe"):
		return "crypto_LUKS"
	case at(512+24, "LVM2 001") || at(512, "LABELONE"):
		return "LVM2_member"
	case at(0x10040, "_BHRfS_M"):
		return "btrfs"
	case at(4086, "SWAPSPACE2") || at(4086, "SWAP-SPACE"):
		return "swap"
	case len(b) >= 1024+0x3A && binary.LittleEndian.Uint16(b[1024+0x38:]) == 0xEF53:
		return extVersion(b[1024:])
	case at(32769, "CD001"):
		return "iso9660"
	case isFAT(b):
		return "vfat"
	}
	return ""
}

// extVersion tells ext2, ext3 and ext4 apart as blkid does.
func extVersion(sb []byte) string {
	compat := binary.LittleEndian.Uint32(sb[0x5C:])
	incompat := binary.LittleEndian.Uint32(sb[0x60:])
	switch {
	case incompat&(0x40|0x80|0x200) != 0: // extents, 64bit, flex_bg
		return "ext4"
	case compat&0x4 != 0: // has_journal
		return "ext3"
	}
	return "ext2"
}

func isFAT(b []byte) bool {
	if len(b) < 512 || b[510] != 0x55 || b[511] != 0xAA || (b[0] != 0xEB && b[0] != 0xE9) {
		return false
	}
	return bytes.Equal(b[54:59], []byte("FAT12")) || bytes.Equal(b[54:59], []byte("FAT16")) ||
		bytes.Equal(b[82:87], []byte("FAT32")) || bytes.Equal(b[54:57], []byte("FAT"))
}

// Open opens the file system in r (a whole image without a partition
// table, or one partition).
func Open(r io.ReaderAt, size int64) (*Volume, error) {
	switch t := Detect(r, size); t {
	case "ext2", "ext3", "ext4":
		v, err := ext4.Open(r, size)
		if err != nil {
			return nil, err
		}
		return &Volume{FS: v, Type: t, Label: v.Label}, nil
	case "vfat":
		v, err := fat.Open(r, size)
		if err != nil {
			return nil, err
		}
		return &Volume{FS: v, Type: t, Label: v.Label}, nil
	case "ntfs":
		v, err := ntfs.Open(r, size)
		if err != nil {
			return nil, err
		}
		return &Volume{FS: v, Type: t, Label: v.Label}, nil
	case "iso9660":
		v, err := iso.Open(r, size, "")
		if err != nil {
			return nil, err
		}
		var any any = v
		f, ok := any.(FS)
		if !ok {
			return nil, fmt.Errorf("%w: browsing ISO 9660 here: use vdisk iso ls/extract", formats.ErrUnsupported)
		}
		return &Volume{FS: f, Type: t}, nil
	case "":
		return nil, ErrNoFileSystem
	default:
		return nil, fmt.Errorf("%w: the %s file system (vdisk reads ext2/3/4, FAT, NTFS and ISO 9660)", formats.ErrUnsupported, t)
	}
}

// OpenStream opens a named data stream of a file (NTFS alternate data
// streams); other file systems have none.
func OpenStream(v *Volume, name, stream string) (io.Reader, error) {
	s, ok := v.FS.(interface {
		OpenStream(name, stream string) (io.Reader, error)
	})
	if !ok {
		return nil, fmt.Errorf("%w: %s has no named streams", fs.ErrNotExist, v.Type)
	}
	return s.OpenStream(name, stream)
}
