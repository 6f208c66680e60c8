package vdi

import (
	"context"
	"fmt"

	"github.com/vdiskio/vdisk/formats"
)

// Check verifies the block map as qemu-img check does: every allocated
// entry must be below the block count and used once, and the header's
// allocated-block count must match. VDI has nothing to repair safely, so
// the options are ignored (qemu does the same).
func (img *Image) Check(ctx context.Context, _ formats.CheckOptions) (*formats.CheckReport, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return img.check(), nil
}

func (img *Image) check() *formats.CheckReport {
	img.mu.RLock()
	defer img.mu.RUnlock()
	r := &formats.CheckReport{}
	owner := make([]uint32, len(img.bmap)) // data index -> virtual block+1
	var allocated uint32
	for b, e := range img.bmap {
		if !isAllocated(e) {
			continue
		}
		if e >= img.hdr.Blocks {
			r.Corruptions++
			r.Messages = append(r.Messages, fmt.Sprintf("ERROR: block index %d too large, is %d", b, e))
			continue
		}
		allocated++
		if owner[e] != 0 {
			r.Corruptions++
			r.Messages = append(r.Messages, fmt.Sprintf("ERROR: block index %d also used by %d", owner[e]-1, b))
			continue
		}
		owner[e] = uint32(b) + 1
	}
	if allocated < img.allocated {
		// Blocks counted that no entry uses: an interrupted write (the
		// header goes first); the space is lost, nothing reads wrong.
		r.Leaks += int64(img.allocated - allocated)
		r.Messages = append(r.Messages, fmt.Sprintf("Leaked blocks: allocated blocks mismatch, is %d, should be %d", allocated, img.allocated))
	} else if allocated != img.allocated {
		r.Corruptions++
		r.Messages = append(r.Messages, fmt.Sprintf("ERROR: allocated blocks mismatch, is %d, should be %d", allocated, img.allocated))
	}
	return r
}
