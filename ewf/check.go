package ewf

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"errors"
	"fmt"
	"hash"
	"io"
	"runtime"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/vdiskio/vdisk/formats"
)

// scanBatchBytes is how much of the disk one scan worker decodes at a time.
const scanBatchBytes = 4 << 20

// Check verifies what EWF can check: every table against its table2 copy,
// and every chunk's checksum (Adler-32, or zlib's for compressed chunks).
// Each damaged chunk is a corruption; EWF has nothing to repair.
func (img *Image) Check(ctx context.Context, _ formats.CheckOptions) (*formats.CheckReport, error) {
	r := &formats.CheckReport{}
	for ti := range img.tables {
		if msg, err := img.compareMirror(ti); err != nil {
			return nil, err
		} else if msg != "" {
			r.Corruptions++
			r.Messages = append(r.Messages, msg)
		}
	}
	problems, err := img.scan(ctx, nil)
	if err != nil {
		return nil, err
	}
	r.Corruptions += int64(len(problems))
	for _, p := range problems {
		r.Messages = append(r.Messages, "ERROR "+p)
	}
	return r, nil
}

// compareMirror reports a table whose table2 copy differs from it.
func (img *Image) compareMirror(ti int) (string, error) {
	t := &img.tables[ti]
	if t.mirrorOff < 0 {
		return "", nil
	}
	seg := &img.segs[t.seg]
	n := t.entries * tableEntryBytes
	a, b := make([]byte, n), make([]byte, n)
	for _, x := range []struct {
		buf []byte
		off int64
	}{{a, t.entriesOff}, {b, t.mirrorOff}} {
		if got, err := seg.f.ReadAt(x.buf, x.off); int64(got) < n {
			if err != nil && err != io.EOF {
				return "", fmt.Errorf("%s: reading table entries at %d: %w", seg.name, x.off, err)
			}
			return fmt.Sprintf("ERROR %s: table entries at offset %d run past the end of the file", seg.name, x.off), nil
		}
	}
	if !bytes.Equal(a, b) {
		return fmt.Sprintf("ERROR %s: the table2 at offset %d differs from the table at offset %d", seg.name, t.mirrorOff, t.entriesOff), nil
	}
	return "", nil
}

// VerifyDigests hashes the disk with MD5 and SHA-1 (those it stores) and
// returns them beside the stored ones (formats.DigestVerifier).
func (img *Image) VerifyDigests(ctx context.Context, progress func(done, total int64)) (*formats.DigestReport, error) {
	type algo struct {
		name   string
		stored []byte
		h      hash.Hash
	}
	var algos []algo
	if img.digests.MD5 != nil {
		algos = append(algos, algo{"md5", img.digests.MD5, md5.New()})
	}
	if img.digests.SHA1 != nil {
		algos = append(algos, algo{"sha1", img.digests.SHA1, sha1.New()})
	}
	rep := &formats.DigestReport{}
	if len(algos) == 0 {
		return rep, nil
	}
	var done int64
	sink := func(data []byte) {
		var wg sync.WaitGroup
		for _, a := range algos {
			wg.Go(func() { a.h.Write(data) })
		}
		wg.Wait()
		done += int64(len(data))
		if progress != nil {
			progress(done, img.size)
		}
	}
	problems, err := img.scan(ctx, sink)
	if err != nil {
		return nil, err
	}
	rep.Problems = problems
	for _, a := range algos {
		rep.Digests = append(rep.Digests, formats.DigestCheck{Algorithm: a.name, Stored: a.stored, Computed: a.h.Sum(nil)})
	}
	return rep, nil
}

// scanBatch is one run of chunks decoded by a scan worker.
type scanBatch struct {
	firstChunk, chunks int64
	buf                []byte
	problems           []string
	err                error
	ready              chan struct{}
}

// scan decodes every chunk in order, workers in parallel, and hands the
// disk bytes to sink (when not nil) in order. Damaged chunks are returned
// as problems (and read as zeros); other errors stop the scan.
func (img *Image) scan(ctx context.Context, sink func([]byte)) ([]string, error) {
	perBatch := max(1, min(scanBatchBytes/img.chunkBytes, img.chunks))
	batches := (img.chunks + perBatch - 1) / perBatch
	workers := int(max(1, min(int64(runtime.GOMAXPROCS(0)), batches)))
	g, ctx := errgroup.WithContext(ctx)
	bufs := make(chan []byte, workers+2)
	for range cap(bufs) {
		bufs <- make([]byte, perBatch*img.chunkBytes)
	}
	work := make(chan *scanBatch, workers)
	order := make(chan *scanBatch, workers+1)
	g.Go(func() error {
		defer close(work)
		defer close(order)
		for first := int64(0); first < img.chunks; first += perBatch {
			var buf []byte
			select {
			case buf = <-bufs:
			case <-ctx.Done():
				return ctx.Err()
			}
			b := &scanBatch{firstChunk: first, chunks: min(perBatch, img.chunks-first), buf: buf, ready: make(chan struct{})}
			select {
			case order <- b:
			case <-ctx.Done():
				return ctx.Err()
			}
			work <- b
		}
		return nil
	})
	for range workers {
		g.Go(func() error {
			for b := range work {
				img.decodeBatch(b)
				close(b.ready)
			}
			return nil
		})
	}
	var problems []string
	g.Go(func() error {
		for b := range order {
			select {
			case <-b.ready:
			case <-ctx.Done():
				return ctx.Err()
			}
			if b.err != nil {
				return b.err
			}
			problems = append(problems, b.problems...)
			if sink != nil {
				end := min(img.size, (b.firstChunk+b.chunks)*img.chunkBytes)
				sink(b.buf[:end-b.firstChunk*img.chunkBytes])
			}
			bufs <- b.buf
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return problems, nil
}

// decodeBatch decodes a batch; a damaged chunk reads as zeros and is noted.
func (img *Image) decodeBatch(b *scanBatch) {
	var tmp []byte
	for i := range b.chunks {
		idx := b.firstChunk + i
		dst := b.buf[i*img.chunkBytes : (i+1)*img.chunkBytes]
		clen := img.chunkLen(idx)
		target := dst
		if clen < img.chunkBytes {
			if tmp == nil {
				tmp = make([]byte, img.chunkBytes)
			}
			target = tmp
		}
		err := img.readChunk(idx, target)
		switch {
		case err == nil:
		case errors.Is(err, formats.ErrCorrupt):
			b.problems = append(b.problems, err.Error())
			clear(target)
		default:
			b.err = err
			return
		}
		if clen < img.chunkBytes {
			copy(dst, tmp[:clen])
		}
	}
}
