package convert

import (
	"fmt"
	"io"

	"github.com/vdiskio/vdisk/formats"
)

// zeroWriter is a Hash that can take a run of zeros without a buffer
// (checksum.Hashes).
type zeroWriter interface {
	WriteZeros(n int64)
}

// hasher feeds Options.Hash the guest bytes in offset order. The ordered
// committer hands it each committed task (after its writes) and the ranges
// the plan skipped (zero and unallocated extents on a zero target); a
// goroutine of its own hashes them, so hashing overlaps the copy, and
// returns each chunk buffer to the pool once hashed.
type hasher struct {
	w       io.Writer
	pos     int64 // bytes handed over so far (committer side)
	jobs    chan hashJob
	done    chan error
	release func(*result)
	zeros   []byte
}

// hashJob is n zero bytes (buf nil) or buf; res is released after.
type hashJob struct {
	n   int64
	buf []byte
	res *result
}

func newHasher(w io.Writer, opts Options, release func(*result)) (*hasher, error) {
	if w == nil {
		return nil, nil
	}
	if opts.TopLayerOnly {
		return nil, fmt.Errorf("%w: hashing the guest bytes needs the whole disk, not only the top layer (-B)", formats.ErrUnsupported)
	}
	h := &hasher{w: w, jobs: make(chan hashJob, 4), done: make(chan error, 1), release: release}
	go h.loop()
	return h, nil
}

// loop hashes jobs in order until jobs is closed; after an error it only
// releases buffers.
func (h *hasher) loop() {
	var err error
	for j := range h.jobs {
		if err == nil {
			err = h.hash(j)
		}
		if j.res != nil {
			h.release(j.res)
		}
	}
	h.done <- err
}

func (h *hasher) hash(j hashJob) error {
	if j.buf != nil {
		if _, err := h.w.Write(j.buf); err != nil {
			return fmt.Errorf("hashing: %w", err)
		}
		return nil
	}
	if zw, ok := h.w.(zeroWriter); ok {
		zw.WriteZeros(j.n)
		return nil
	}
	if h.zeros == nil {
		h.zeros = make([]byte, 1<<20)
	}
	for n := j.n; n > 0; {
		k := min(n, int64(len(h.zeros)))
		if _, err := h.w.Write(h.zeros[:k]); err != nil {
			return fmt.Errorf("hashing zeros: %w", err)
		}
		n -= k
	}
	return nil
}

// task hands over a committed task: zeros up to its start, then its bytes
// (res.buf for data, zeros for a zero range). The hasher releases res.
func (h *hasher) task(t *task, res *result) {
	h.zerosTo(t.off)
	if t.data {
		h.jobs <- hashJob{buf: res.buf[:t.length], res: res}
	} else {
		h.jobs <- hashJob{n: t.length, res: res}
	}
	h.pos = t.off + t.length
}

// zerosTo hands over zeros from the current position to end.
func (h *hasher) zerosTo(end int64) {
	if end > h.pos {
		h.jobs <- hashJob{n: end - h.pos}
		h.pos = end
	}
}

// finish hashes zeros to size and waits for the hashing to end.
func (h *hasher) finish(size int64) error {
	if h == nil {
		return nil
	}
	h.zerosTo(size)
	close(h.jobs)
	return <-h.done
}

// stop ends the hashing after a failed copy (releasing what it holds).
func (h *hasher) stop() {
	if h != nil {
		close(h.jobs)
		<-h.done
	}
}
