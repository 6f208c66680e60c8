package ewf

import (
	"fmt"
	"path/filepath"
)

// maxSegments is the last segment number that has an extension: .E01 to
// .E99, then .EAA to .ZZZ (22 first letters x 26 x 26 after the 99).
const maxSegments = 99 + 22*26*26

// segmentName returns the file name of segment number n (1-based) of the set
// whose first segment is named first: the extension's last two characters
// count 01..99, then the whole extension runs AA..ZZ from its first letter
// (E for EWF-E01, S for EWF-S01), in the case of the first name. A first
// name without a .E01/.s01-style extension has no siblings.
func segmentName(first string, n int) (string, error) {
	ext := filepath.Ext(first)
	if len(ext) != 4 || ext[2:] != "01" || !isLetter(ext[1]) {
		return "", fmt.Errorf("the first segment's name %q does not end in .E01 (or .e01, .s01), so segment %d has no name", filepath.Base(first), n)
	}
	if n < 1 || n > maxSegments {
		return "", fmt.Errorf("segment %d is beyond the last EWF segment extension (.ZZZ, segment %d)", n, maxSegments)
	}
	base := first[:len(first)-3]
	lower := ext[1] >= 'a'
	if n <= 99 {
		return fmt.Sprintf("%s%c%02d", base, ext[1], n), nil
	}
	i := n - 100
	letters := []byte{upper(ext[1]) + byte(i/(26*26)), 'A' + byte(i/26%26), 'A' + byte(i%26)}
	if letters[0] > 'Z' {
		return "", fmt.Errorf("segment %d is beyond the last extension (.%cZZ)", n, 'Z')
	}
	if lower {
		for j := range letters {
			letters[j] += 'a' - 'A'
		}
	}
	return base + string(letters), nil
}

func isLetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}
