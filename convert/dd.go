package convert

import (
	"fmt"
	"strings"

	"github.com/vdiskio/vdisk/formats"
)

// DD is the operands of `qemu-img dd`: if=, of=, bs=, count= and skip=.
// Count and Skip are in blocks of BlockBytes; qemu counts the skipped
// blocks in count (the copy ends at count*bs, not skip+count blocks).
type DD struct {
	In, Out    string
	BlockBytes int64 // bs=, default 512
	Count      int64 // count=: blocks from the start of the input
	Skip       int64 // skip=: blocks skipped at the start
	// CountSet and SkipSet say the operand was given.
	CountSet, SkipSet bool
}

// ParseDD parses dd operands ("bs=1M", "count=4", ...), sizes with qemu's
// suffixes. Errors use qemu-img's words.
func ParseDD(args []string) (DD, error) {
	dd := DD{BlockBytes: 512}
	for _, a := range args {
		key, val, ok := strings.Cut(a, "=")
		if !ok {
			return dd, fmt.Errorf("unrecognized operand %s", a)
		}
		var err error
		switch key {
		case "if":
			dd.In = val
		case "of":
			dd.Out = val
		case "bs":
			dd.BlockBytes, err = formats.ParseSize(val)
			if err == nil && dd.BlockBytes <= 0 {
				err = fmt.Errorf("must be positive")
			}
		case "count":
			dd.Count, err = formats.ParseSize(val)
			dd.CountSet = true
		case "skip":
			dd.Skip, err = formats.ParseSize(val)
			dd.SkipSet = true
		default:
			return dd, fmt.Errorf("unrecognized operand %s", a)
		}
		if err != nil {
			return dd, fmt.Errorf("invalid %s: %q: %v", key, val, err)
		}
	}
	switch {
	case dd.In == "":
		return dd, fmt.Errorf("must specify if=input")
	case dd.Out == "":
		return dd, fmt.Errorf("must specify of=output")
	case dd.Count > 0 && dd.Count > (1<<62)/dd.BlockBytes, dd.Skip > (1<<62)/dd.BlockBytes:
		return dd, fmt.Errorf("count or skip is too large")
	}
	return dd, nil
}

// Range is the window of an input of size bytes that dd copies, for
// Section: from skip*bs to count*bs (or the end of the input).
func (dd DD) Range(size int64) (start, length int64, err error) {
	end := size
	if dd.CountSet && dd.Count <= size/dd.BlockBytes {
		end = dd.Count * dd.BlockBytes
	}
	start = dd.Skip * dd.BlockBytes
	if dd.SkipSet && (dd.Skip > size/dd.BlockBytes || start > end) {
		return 0, 0, fmt.Errorf("cannot skip to specified offset")
	}
	return start, end - start, nil
}
