// Package imagelock takes the byte-range locks qemu's file driver
// (block/file-posix.c) takes on image files, so that vdisk and a running
// qemu, qemu-img or qemu-nbd exclude each other as they exclude themselves.
//
// qemu describes an open image by two sets of permissions over four bits:
// consistent read (bit 0), write (1), write unchanged (2) and resize (3).
// The holder takes a shared lock (F_RDLCK, open-file-description locks where
// the OS has them, else POSIX locks) on byte 100+i for every permission i it
// uses, and on byte 200+i for every permission i it does not let others
// have. Before using a permission it tests that no one else locks byte
// 200+i ("Failed to get "write" lock"); before refusing others a
// permission it tests that no one else locks byte 100+i ("Failed to get
// shared "write" lock"). qemu 7.2 takes, for example:
//
//	qcow2/vmdk/vpc/vhdx/vdi reader: 100, 201, 203    writer: 100 101 103, 201 203
//	raw reader:                      100              writer: 100 101
//	info (not raw): 201, 203; info of raw and -U (force share): none
//
// (raw shares everything; a conversion's source, raw or not, does not share
// write and resize). Locks are held on a descriptor of their own, so they
// last until Release, whatever the image's own descriptors do.
package imagelock

// Perm is a set of qemu block permissions.
type Perm uint8

// qemu's BLK_PERM_* bits.
const (
	ConsistentRead Perm = 1 << iota
	Write
	WriteUnchanged
	Resize

	All = ConsistentRead | Write | WriteUnchanged | Resize
)

// Byte offsets of qemu's lock bytes (RAW_LOCK_PERM_BASE, RAW_LOCK_SHARED_BASE).
const (
	permBase   = 100
	sharedBase = 200
	permBits   = 4
)

// permName is qemu's bdrv_perm_names wording, used in its errors.
func permName(bit int) string {
	return [...]string{"consistent read", "write", "write unchanged", "resize"}[bit]
}

// Mode is what an open takes: the permissions it uses and the ones it lets
// others have.
type Mode struct {
	Use    Perm
	Shared Perm
}

// Reader is a read-only open of a format with metadata (or a conversion's
// source): it reads, and lets no one else write or resize.
var Reader = Mode{Use: ConsistentRead, Shared: All &^ (Write | Resize)}

// RawReader is a read-only open of a raw image: it reads and shares all.
var RawReader = Mode{Use: ConsistentRead, Shared: All}

// Info is `info` of a format with metadata: it uses nothing and lets no
// one else write or resize.
var Info = Mode{Shared: All &^ (Write | Resize)}

// Writer is a read-write open of a format with metadata.
var Writer = Mode{Use: ConsistentRead | Write | Resize, Shared: All &^ (Write | Resize)}

// RawWriter is a read-write open of a raw image (resize adds Resize).
var RawWriter = Mode{Use: ConsistentRead | Write, Shared: All}
