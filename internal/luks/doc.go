// Package luks reads and writes LUKS headers (the Linux Unified Key Setup
// on-disk format of cryptsetup, versions 1 and 2) and encrypts and decrypts
// the sectors they protect. It is shared by the luks driver (a raw LUKS
// volume, qemu's "luks" format) and the qcow2 driver (encrypt.format=luks,
// where the same header lives in clusters named by a header extension).
//
// A LUKS volume has a random master key that encrypts the payload sector by
// sector (for example aes-xts-plain64: AES-256 in XTS mode with the sector
// number as tweak). The master key is stored in up to 8 key slots (LUKS1;
// LUKS2 allows 32): a slot derives a key from a passphrase with PBKDF2
// (LUKS2 also Argon2i/Argon2id), and holds the master key expanded by the
// anti-forensic splitter (AF, 4000 stripes diffused with a hash) and
// encrypted with that derived key. A digest of the master key (PBKDF2 of it
// with its own salt) tells a correct passphrase from a wrong one.
//
// LUKS1 (cryptsetup docs/on-disk-format.pdf, version 1.2.3) is a 592-byte
// big-endian header at offset 0 followed by the key material areas.
// LUKS2 (docs/on-disk-format-luks2.pdf) is a 4096-byte binary header and a
// JSON metadata area, stored twice (primary at 0, secondary after it), with
// a SHA-256 checksum over both; keyslots, segments and digests are JSON
// objects. qemu 7.2 reads and writes only LUKS1; cryptsetup both.
//
// Supported: ciphers aes-128/192/256 in xts, cbc, ctr or ecb mode with
// plain, plain64 or (cbc, ctr) essiv IVs; hashes sha1, sha224, sha256,
// sha384, sha512; PBKDF2, Argon2i, Argon2id. Refused by name: other ciphers
// (serpent, twofish, cast5, sm4...), xts with essiv, LUKS2 integrity
// (authenticated encryption), LUKS2 reencryption in progress.
//
// Limits: every count, size and offset read from a header is checked
// before it sizes an allocation or a loop; KDF costs (PBKDF2 iterations,
// Argon2 memory and passes) are bounded by Limits before any key is
// derived, so a hostile header cannot make an open take minutes or exhaust
// memory. Passphrases and keys never appear in errors; key buffers are
// zeroed after use.
package luks
