package vhdx

import (
	"encoding/binary"
	"hash/crc32"

	uuid "github.com/vdiskio/vdisk/internal/guid"
)

// guid is a GUID in MS-VHDX on-disk byte order: Data1 (u32), Data2 and Data3
// (u16) little-endian, then Data4 as 8 raw bytes (formats.md §0, §2.9).
type guid [16]byte

// mustGUID parses a textual GUID constant; it panics on a malformed literal,
// which is a programming error.
func mustGUID(s string) guid {
	g, err := parseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

// parseGUID parses "XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX", with or without
// braces, into on-disk byte order.
func parseGUID(s string) (guid, error) {
	g, err := uuid.Parse(s)
	return guid(g.Mixed()), err
}

// String formats g as uppercase "XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX".
func (g guid) String() string { return uuid.FromMixed(g[:]).Upper() }

// isZero reports whether g is the null GUID.
func (g guid) isZero() bool { return g == guid{} }

// newGUID returns a random (version 4) GUID.
func newGUID() (guid, error) {
	g, err := uuid.New()
	return guid(g.Mixed()), err
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checksum returns the CRC-32C of b with the 4-byte checksum field at
// fieldOff taken as zero (MS-VHDX computes every checksum so).
func checksum(b []byte, fieldOff int) uint32 {
	crc := crc32.Update(0, castagnoli, b[:fieldOff])
	crc = crc32.Update(crc, castagnoli, []byte{0, 0, 0, 0})
	return crc32.Update(crc, castagnoli, b[fieldOff+4:])
}

// setChecksum stores the CRC-32C of b in the field at fieldOff.
func setChecksum(b []byte, fieldOff int) {
	binary.LittleEndian.PutUint32(b[fieldOff:], checksum(b, fieldOff))
}

// validChecksum checks the CRC-32C field at fieldOff.
func validChecksum(b []byte, fieldOff int) bool {
	return binary.LittleEndian.Uint32(b[fieldOff:]) == checksum(b, fieldOff)
}
