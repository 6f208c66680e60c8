package main

import (
	"fmt"
	"strings"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/source/split"
)

// takeSplitOption removes split=SIZE from -o options (it is vdisk's, for
// every format, not a driver's) and returns the rest joined and the size.
func takeSplitOption(opts []string) (rest, size string) {
	var keep []string
	for _, o := range opts {
		for _, kv := range strings.Split(o, ",") {
			if v, ok := strings.CutPrefix(kv, "split="); ok {
				size = v
				continue
			}
			keep = append(keep, kv)
		}
	}
	return strings.Join(keep, ","), size
}

// parseSplitSize parses a split piece size ("" is no split).
func parseSplitSize(text string) (int64, error) {
	if text == "" {
		return 0, nil
	}
	n, err := formats.ParseSize(text)
	if err != nil || n < split.MinPieceBytes {
		return 0, fmt.Errorf("invalid split size %q: at least %d bytes (1M), e.g. split=4G for FAT32... use 4095M, 2G for upload limits", text, split.MinPieceBytes)
	}
	return n, nil
}
