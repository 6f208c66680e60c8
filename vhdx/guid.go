package vhdx

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strings"
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
	s = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(s), "{"), "}")
	var g guid
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, fmt.Errorf("malformed GUID %q", s)
	}
	hex := strings.ReplaceAll(s, "-", "")
	var text [16]byte // RFC (big-endian) order as written
	for i := range text {
		hi, ok1 := hexVal(hex[2*i])
		lo, ok2 := hexVal(hex[2*i+1])
		if !ok1 || !ok2 {
			return g, fmt.Errorf("malformed GUID %q", s)
		}
		text[i] = hi<<4 | lo
	}
	binary.LittleEndian.PutUint32(g[0:], binary.BigEndian.Uint32(text[0:]))
	binary.LittleEndian.PutUint16(g[4:], binary.BigEndian.Uint16(text[4:]))
	binary.LittleEndian.PutUint16(g[6:], binary.BigEndian.Uint16(text[6:]))
	copy(g[8:], text[8:])
	return g, nil
}

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// String formats g as uppercase "XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX".
func (g guid) String() string {
	return fmt.Sprintf("%08X-%04X-%04X-%X-%X",
		binary.LittleEndian.Uint32(g[0:]), binary.LittleEndian.Uint16(g[4:]),
		binary.LittleEndian.Uint16(g[6:]), g[8:10], g[10:16])
}

// isZero reports whether g is the null GUID.
func (g guid) isZero() bool { return g == guid{} }

// newGUID returns a random (version 4) GUID.
func newGUID() (guid, error) {
	var g guid
	if _, err := rand.Read(g[:]); err != nil {
		return g, err
	}
	// Version 4 lives in the high nibble of Data3 (little-endian: byte 7).
	g[7] = g[7]&0x0f | 0x40
	g[8] = g[8]&0x3f | 0x80
	return g, nil
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
