package nbd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
)

// maxDescriptors bounds the extents of one block status reply (the client
// asks again for the rest).
const maxDescriptors = 1 << 14

// minHoleChunk is the shortest zero range a read answers with a hole chunk
// instead of data.
const minHoleChunk = 64 << 10

// transmitter is one connection's transmission phase.
type transmitter struct {
	s       *Server
	sess    *session
	e       *Export
	size    int64
	timeout time.Duration
	maxPay  uint32
	budget  *semaphore.Weighted // payload bytes in flight
	workers *semaphore.Weighted // requests in flight
	budgetN int64

	wmu  sync.Mutex // one reply at a time on the wire
	werr error      // the first write failure; later replies are dropped
}

func (s *Server) transmit(ctx context.Context, sess *session) error {
	_, _, maxPay := sess.export.blockSizes()
	t := &transmitter{s: s, sess: sess, e: sess.export, size: sess.export.Image.Size(),
		timeout: positive(s.RequestTimeout, DefaultRequestTimeout), maxPay: maxPay,
		budgetN: max(positive(s.InFlightBytes, DefaultInFlightBytes), int64(maxPay)),
		workers: semaphore.NewWeighted(int64(positive(s.InFlight, DefaultInFlight)))}
	t.budget = semaphore.NewWeighted(t.budgetN)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	// Every worker has answered (or failed) before the state is freed; on
	// a failure the connection closes first, so no worker waits on a dead peer.
	defer wg.Wait()
	var hdr [requestLen]byte
	for {
		req, payload, err := t.readRequest(ctx, hdr[:])
		if err != nil {
			sess.conn.Close()
			if errors.Is(err, io.EOF) {
				return nil // the client went away between requests
			}
			return err
		}
		if req.Type == cmdDisc {
			wg.Wait() // outstanding requests are answered before closing
			return nil
		}
		if err := t.workers.Acquire(ctx, 1); err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer t.workers.Release(1)
			t.handle(ctx, req, payload)
		}()
	}
}

// readRequest reads one request header and, for a write, its payload. The
// first byte may wait forever; the rest must arrive within RequestTimeout.
func (t *transmitter) readRequest(ctx context.Context, hdr []byte) (request, []byte, error) {
	conn := t.sess.conn
	if err := conn.SetReadDeadline(time.Time{}); err != nil {
		return request{}, nil, err
	}
	if err := readFull(conn, hdr[:1]); err != nil {
		return request{}, nil, err
	}
	if err := conn.SetReadDeadline(time.Now().Add(t.timeout)); err != nil {
		return request{}, nil, err
	}
	if err := readFull(conn, hdr[1:]); err != nil {
		return request{}, nil, fmt.Errorf("reading a request: %w", err)
	}
	req, err := parseRequest(hdr)
	if err != nil {
		return req, nil, err
	}
	var payload []byte
	if req.Type == cmdRead || req.Type == cmdWrite {
		if req.Length > t.maxPay {
			if req.Type == cmdWrite { // its data cannot be skipped safely
				t.replyErr(req, errInval, fmt.Sprintf("write of %d bytes exceeds the maximum payload %d", req.Length, t.maxPay))
				return req, nil, protoErr("write of %d bytes (maximum payload %d)", req.Length, t.maxPay)
			}
			return req, nil, nil // answered EINVAL by handle
		}
		if err := t.budget.Acquire(ctx, int64(req.Length)); err != nil {
			return req, nil, err
		}
		t.s.buffered.Add(int64(req.Length))
		payload = make([]byte, req.Length)
		if req.Type == cmdWrite {
			if err := readFull(conn, payload); err != nil {
				t.release(payload)
				return req, nil, fmt.Errorf("reading %d bytes of write data: %w", req.Length, err)
			}
		}
	}
	return req, payload, nil
}

// release returns a request's payload to the connection's budget.
func (t *transmitter) release(payload []byte) {
	t.s.buffered.Add(-int64(len(payload)))
	t.budget.Release(int64(len(payload)))
}

// handle executes one request and sends its reply.
func (t *transmitter) handle(ctx context.Context, req request, payload []byte) {
	if payload != nil {
		defer t.release(payload)
	}
	if errno, msg := t.check(req); errno != 0 {
		t.replyErr(req, errno, msg)
		return
	}
	var err error
	switch req.Type {
	case cmdRead:
		t.read(req, payload)
		return
	case cmdBlockStatus:
		t.blockStatus(req)
		return
	case cmdWrite:
		err = t.mutate(req, func(w formats.Writable) error { _, err := w.WriteAt(payload, int64(req.Offset)); return err })
	case cmdFlush:
		err = t.flush()
	case cmdTrim:
		err = t.mutate(req, func(w formats.Writable) error {
			return w.(formats.ZeroWriter).WriteZeroes(int64(req.Offset), int64(req.Length))
		})
	case cmdWriteZeroes:
		err = t.writeZeroes(req)
	case cmdCache:
		err = nil // a hint; reads are not cached here
	}
	if err != nil {
		t.replyErr(req, errnoOf(err), err.Error())
		return
	}
	t.replyOK(req)
}

// check validates a request against the export and the negotiation.
func (t *transmitter) check(req request) (uint32, string) {
	allowed := map[uint16]uint16{
		cmdRead: cmdFlagFUA | cmdFlagDF, cmdWrite: cmdFlagFUA, cmdFlush: cmdFlagFUA,
		cmdTrim: cmdFlagFUA, cmdWriteZeroes: cmdFlagFUA | cmdFlagNoHole | cmdFlagFastZero,
		cmdBlockStatus: cmdFlagFUA | cmdFlagReqOne, cmdCache: cmdFlagFUA,
	}
	mask, known := allowed[req.Type]
	end := req.Offset + uint64(req.Length)
	switch {
	case !known:
		return errInval, fmt.Sprintf("unknown command %d", req.Type)
	case req.Flags&^mask != 0:
		return errInval, fmt.Sprintf("command %d: flags %#x not valid", req.Type, req.Flags)
	case req.Flags&cmdFlagDF != 0 && !t.sess.structured:
		return errInval, "NBD_CMD_FLAG_DF without structured replies"
	case (req.Type == cmdRead || req.Type == cmdWrite) && req.Length > t.maxPay:
		return errInval, fmt.Sprintf("request of %d bytes exceeds the maximum payload %d", req.Length, t.maxPay)
	case req.Type == cmdFlush:
		return 0, ""
	case req.Type == cmdBlockStatus && t.sess.metaID == 0:
		return errInval, "NBD_CMD_BLOCK_STATUS without a selected meta context"
	case end < req.Offset || end > uint64(t.size):
		if req.Type == cmdWrite || req.Type == cmdWriteZeroes {
			return errNoSpc, fmt.Sprintf("range %d+%d beyond the export size %d", req.Offset, req.Length, t.size)
		}
		return errInval, fmt.Sprintf("range %d+%d beyond the export size %d", req.Offset, req.Length, t.size)
	}
	switch req.Type {
	case cmdWrite, cmdTrim, cmdWriteZeroes:
		if !t.e.Writable {
			return errPerm, "the export is read-only"
		}
	}
	if req.Type == cmdTrim {
		if _, ok := t.e.Image.(formats.ZeroWriter); !ok {
			return errInval, "TRIM is not offered by this export"
		}
	}
	if req.Type == cmdWriteZeroes && req.Flags&cmdFlagFastZero != 0 {
		if _, ok := t.e.Image.(formats.ZeroWriter); !ok || req.Flags&cmdFlagNoHole != 0 {
			return errNotSup, "zeroing this range would not be faster than writing it"
		}
	}
	return 0, ""
}

// mutate runs a write-like operation under the export's write lock, then
// flushes when the request asks for FUA.
func (t *transmitter) mutate(req request, op func(formats.Writable) error) error {
	w := t.e.Image.(formats.Writable)
	t.e.mu.Lock()
	err := op(w)
	t.e.mu.Unlock()
	if err == nil && req.Flags&cmdFlagFUA != 0 {
		err = t.flush()
	}
	return err
}

func (t *transmitter) flush() error { return t.e.flush() }

// flush makes the export's writes durable: the image's Flush, then Sync.
func (e *Export) flush() error {
	w, ok := e.Image.(formats.Writable)
	if !ok || !e.Writable {
		return nil // nothing was written
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := w.Flush(); err != nil {
		return err
	}
	if e.Sync != nil {
		return e.Sync()
	}
	return nil
}

func (t *transmitter) writeZeroes(req request) error {
	return t.mutate(req, func(w formats.Writable) error {
		off, n := int64(req.Offset), int64(req.Length)
		if zw, ok := w.(formats.ZeroWriter); ok && req.Flags&cmdFlagNoHole == 0 {
			return zw.WriteZeroes(off, n)
		}
		return fileio.WriteZeros(w, off, n)
	})
}

// errnoOf maps an error to the NBD error value.
func errnoOf(err error) uint32 {
	switch {
	case errors.Is(err, formats.ErrReadOnly):
		return errPerm
	case errors.Is(err, formats.ErrInvalidOption), errors.Is(err, formats.ErrUnsupported):
		return errInval
	}
	return errIO
}

// send writes one reply under the wire lock and the request timeout; a
// failure closes the connection (the reader then stops).
func (t *transmitter) send(bufs ...[]byte) {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if t.werr != nil {
		return
	}
	conn := t.sess.conn
	if err := conn.SetWriteDeadline(time.Now().Add(t.timeout)); err != nil {
		t.werr = err
	}
	nb := net.Buffers(bufs)
	if _, err := nb.WriteTo(conn); err != nil && t.werr == nil {
		t.werr = err
	}
	if t.werr != nil {
		conn.Close()
	}
}

func (t *transmitter) replyOK(req request) {
	if t.sess.structured {
		t.send(appendChunkHeader(nil, chunkHeader{Flags: replyFlagDone, Type: replyNone, Handle: req.Handle}))
		return
	}
	t.send(appendSimpleReply(nil, 0, req.Handle))
}

// replyErr answers a request with an error value and a message.
func (t *transmitter) replyErr(req request, errno uint32, msg string) {
	if !t.sess.structured {
		t.send(appendSimpleReply(nil, errno, req.Handle))
		return
	}
	msg = msg[:min(len(msg), 1024)]
	b := binary.BigEndian.AppendUint32(nil, errno)
	b = binary.BigEndian.AppendUint16(b, uint16(len(msg)))
	b = append(b, msg...)
	t.send(appendChunkHeader(nil, chunkHeader{Flags: replyFlagDone, Type: replyError, Handle: req.Handle, Length: uint32(len(b))}), b)
}

// read answers NBD_CMD_READ. With structured replies, ranges of 64 KiB or
// more that read as zeros (holes, zero clusters, unallocated) go as hole
// chunks and are not read.
func (t *transmitter) read(req request, buf []byte) {
	off := int64(req.Offset)
	if !t.sess.structured || req.Flags&cmdFlagDF != 0 || len(buf) < minHoleChunk {
		t.readData(req, buf, off)
		return
	}
	runs, err := t.readRuns(off, int64(len(buf)))
	if err != nil {
		t.readData(req, buf, off)
		return
	}
	for i, r := range runs {
		done := uint16(0)
		if i == len(runs)-1 {
			done = replyFlagDone
		}
		if r.hole {
			p := binary.BigEndian.AppendUint64(nil, uint64(r.off))
			p = binary.BigEndian.AppendUint32(p, uint32(r.length))
			t.send(appendChunkHeader(nil, chunkHeader{Flags: done, Type: replyOffsetHole, Handle: req.Handle, Length: 12}), p)
			continue
		}
		part := buf[r.off-off : r.off-off+r.length]
		if err := t.readImage(part, r.off); err != nil {
			t.readFailed(req, r.off, err)
			return
		}
		t.sendData(req, part, r.off, done)
	}
}

// run is a piece of a read reply.
type run struct {
	off, length int64
	hole        bool
}

// readRuns splits a read into data and hole runs, holes shorter than
// minHoleChunk folded into the data around them.
func (t *transmitter) readRuns(off, length int64) ([]run, error) {
	t.e.mu.RLock()
	exts, err := formats.ChainExtents(t.e.Image, off, length)
	t.e.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	var runs []run
	for _, e := range exts {
		hole := e.Kind != formats.Data && e.Length >= minHoleChunk
		if n := len(runs); n > 0 && runs[n-1].hole == hole && runs[n-1].off+runs[n-1].length == e.Offset {
			runs[n-1].length += e.Length
			continue
		}
		runs = append(runs, run{off: e.Offset, length: e.Length, hole: hole})
	}
	if len(runs) == 0 || runs[0].off != off || runs[len(runs)-1].off+runs[len(runs)-1].length != off+length {
		return nil, fmt.Errorf("extents do not cover the read")
	}
	return runs, nil
}

func (t *transmitter) readImage(p []byte, off int64) error {
	t.e.mu.RLock()
	defer t.e.mu.RUnlock()
	n, err := t.e.Image.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// readData answers a read with one data chunk (or a simple reply).
func (t *transmitter) readData(req request, buf []byte, off int64) {
	if err := t.readImage(buf, off); err != nil {
		t.readFailed(req, off, err)
		return
	}
	if !t.sess.structured {
		t.send(appendSimpleReply(nil, 0, req.Handle), buf)
		return
	}
	t.sendData(req, buf, off, replyFlagDone)
}

func (t *transmitter) sendData(req request, data []byte, off int64, done uint16) {
	h := appendChunkHeader(nil, chunkHeader{Flags: done, Type: replyOffsetData, Handle: req.Handle, Length: uint32(8 + len(data))})
	t.send(binary.BigEndian.AppendUint64(h, uint64(off)), data)
}

// readFailed reports a read error at off (an offset error chunk when
// structured: the client knows what came before is good).
func (t *transmitter) readFailed(req request, off int64, err error) {
	if !t.sess.structured {
		t.send(appendSimpleReply(nil, errnoOf(err), req.Handle))
		return
	}
	msg := err.Error()
	msg = msg[:min(len(msg), 1024)]
	b := binary.BigEndian.AppendUint32(nil, errnoOf(err))
	b = binary.BigEndian.AppendUint16(b, uint16(len(msg)))
	b = append(b, msg...)
	b = binary.BigEndian.AppendUint64(b, uint64(off))
	t.send(appendChunkHeader(nil, chunkHeader{Flags: replyFlagDone, Type: replyErrorOffset, Handle: req.Handle, Length: uint32(len(b))}), b)
}

// blockStatus answers base:allocation from the image's extents through its
// backing chain: data is 0, anything that reads as zeros is HOLE|ZERO.
func (t *transmitter) blockStatus(req request) {
	if req.Length == 0 {
		t.replyErr(req, errInval, "block status of 0 bytes")
		return
	}
	t.e.mu.RLock()
	exts, err := formats.ChainExtents(t.e.Image, int64(req.Offset), int64(req.Length))
	t.e.mu.RUnlock()
	if err != nil {
		t.replyErr(req, errnoOf(err), err.Error())
		return
	}
	b := binary.BigEndian.AppendUint32(nil, t.sess.metaID)
	var lastFlags uint32
	count := 0
	for _, e := range exts {
		if e.Length <= 0 {
			continue
		}
		flags := uint32(0)
		if e.Kind != formats.Data {
			flags = stateHole | stateZero
		}
		if count > 0 && flags == lastFlags && uint64(binary.BigEndian.Uint32(b[len(b)-8:]))+uint64(e.Length) <= 1<<32-1 {
			binary.BigEndian.PutUint32(b[len(b)-8:], binary.BigEndian.Uint32(b[len(b)-8:])+uint32(e.Length))
			continue
		}
		if count == maxDescriptors || (count == 1 && req.Flags&cmdFlagReqOne != 0) {
			break
		}
		b = binary.BigEndian.AppendUint32(b, uint32(e.Length))
		b = binary.BigEndian.AppendUint32(b, flags)
		lastFlags = flags
		count++
	}
	if count == 0 {
		t.replyErr(req, errIO, "no extents for the range")
		return
	}
	t.send(appendChunkHeader(nil, chunkHeader{Flags: replyFlagDone, Type: replyBlockStatus, Handle: req.Handle, Length: uint32(len(b))}), b)
}
