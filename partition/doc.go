// Package partition reads the partition table of a disk: MBR (with extended
// and logical partitions) or GPT (with its backup), and offers each partition
// as an image of its own, so every read command works on one partition.
//
// MBR (the DOS label) is the disk's first 512-byte sector: boot code, four
// 16-byte entries at offset 446 (status, CHS start, type byte, CHS end, first
// LBA, sector count; little-endian) and the signature 55 AA at 510. A type
// 05, 0F or 85 entry is an extended partition: a chain of EBRs, each a sector
// whose first entry is one logical partition (relative to that EBR) and whose
// second points to the next EBR (relative to the extended partition's start).
// Logical partitions are numbered from 5.
//
// GPT (UEFI spec, chapter 5) keeps a protective MBR (one type EE entry) in
// LBA 0, a 92-byte header in LBA 1 ("EFI PART", CRC32 of the header and of
// the entry array), the entry array (usually 128 entries of 128 bytes: type
// GUID, unique GUID, first and last LBA inclusive, attributes, a UTF-16LE
// name), and a backup header in the disk's last LBA with its own copy of the
// entries just before it. When the primary header or its entries fail their
// CRC the backup is used and the table says so. A protective MBR that also
// lists real partitions is a hybrid MBR; the GPT is authoritative.
//
// A disk with no table but a file system in its first sectors (a
// "superfloppy") reads as one partition spanning the disk.
//
// Every offset and count read from the disk is checked against the disk's
// size and the limits below before it is used; EBR chains are bounded and
// loops detected.
package partition
