// Package guid handles the 16-byte identifiers disk formats store. They come
// in two byte orders:
//
//   - RFC 4122 order, the order of the text form (every field big-endian):
//     VHD's footer UniqueId and header ParentUniqueId, VMDK's ddb.uuid, LUKS.
//   - Microsoft (EFI) order: Data1 (4 bytes), Data2 and Data3 (2 bytes each)
//     little-endian, Data4 (8 bytes) as written: VHDX, GPT, VDI's RTUUID.
//
// A GUID value is always in RFC order; Mixed and FromMixed convert to and
// from the Microsoft order (the same byte swap both ways).
package guid

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
)

// GUID is a 16-byte identifier in RFC 4122 order.
type GUID [16]byte

// New returns a random GUID, version 4, variant 10 (RFC 4122 §4.4).
func New() (GUID, error) {
	var g GUID
	if _, err := rand.Read(g[:]); err != nil {
		return g, fmt.Errorf("random GUID: %w", err)
	}
	g[6] = g[6]&0x0f | 0x40
	g[8] = g[8]&0x3f | 0x80
	return g, nil
}

// Parse reads "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" (either case, braces
// and surrounding space allowed).
func Parse(s string) (GUID, error) {
	var g GUID
	t := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(s), "{"), "}")
	if len(t) != 36 || t[8] != '-' || t[13] != '-' || t[18] != '-' || t[23] != '-' {
		return g, fmt.Errorf("malformed GUID %q", s)
	}
	if _, err := hex.Decode(g[:], []byte(strings.ReplaceAll(t, "-", ""))); err != nil {
		return GUID{}, fmt.Errorf("malformed GUID %q", s)
	}
	return g, nil
}

// String is the lower-case text form.
func (g GUID) String() string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", g[0:4], g[4:6], g[6:8], g[8:10], g[10:16])
}

// Upper is the upper-case text form (how Microsoft tools print GUIDs).
func (g GUID) Upper() string { return strings.ToUpper(g.String()) }

// IsZero reports whether g is the null GUID.
func (g GUID) IsZero() bool { return g == GUID{} }

// Mixed returns g in Microsoft order.
func (g GUID) Mixed() [16]byte { return swap(g) }

// FromMixed reads a GUID stored in Microsoft order from the first 16 bytes
// of b (which must hold them).
func FromMixed(b []byte) GUID { return GUID(swap([16]byte(b[:16]))) }

// swap reverses the first three fields, turning either order into the other.
func swap(b [16]byte) [16]byte {
	b[0], b[1], b[2], b[3] = b[3], b[2], b[1], b[0]
	b[4], b[5] = b[5], b[4]
	b[6], b[7] = b[7], b[6]
	return b
}
