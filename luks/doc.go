// Package luks is the driver for raw LUKS volumes, qemu's "luks" format:
// a LUKS1 or LUKS2 header (cryptsetup's on-disk formats) followed by the
// encrypted payload, which is the virtual disk. It is what `cryptsetup
// luksFormat` makes on a partition or file and what `qemu-img create -f
// luks` writes.
//
// Opening needs the passphrase (formats.OpenOptions.Key) unless the image
// is opened for its metadata only (info). Reads decrypt and writes encrypt
// whole sectors (512 bytes; LUKS2 up to 4096) with the sector number,
// counted from the payload start, as IV (plus LUKS2's iv_tweak); partial
// sectors are read, merged and rewritten. Create writes a LUKS1 header as
// qemu does (options key-secret, cipher-alg, cipher-mode, ivgen-alg,
// ivgen-hash-alg, hash-alg, iter-time), with the key from
// formats.OpenOptions.Secrets; vdisk's luks-type=luks2 (with pbkdf,
// pbkdf-memory, pbkdf-time) writes a LUKS2 header as cryptsetup lays it out. The payload of a new volume is not
// initialised (as qemu), so it does not read as zeros: ZeroInit is false
// and conversions write their zeros. The header format itself is
// internal/luks.
package luks
