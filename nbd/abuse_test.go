package nbd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
	"github.com/vdiskio/vdisk/raw"
)

// memImage is a raw image in memory with a recognisable pattern.
func memImage(t testing.TB, size int) (formats.Image, []byte) {
	t.Helper()
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*7 + i>>12)
	}
	img, err := raw.Open(context.Background(), fileio.NewMem("mem.raw", data), formats.OpenOptions{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	return img, data
}

// wire is a hand-driven client connection for protocol abuse.
type wire struct {
	t    *testing.T
	conn net.Conn
}

func dialWire(t *testing.T, s *served) *wire {
	t.Helper()
	conn, err := net.Dial("unix", s.sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	return &wire{t: t, conn: conn}
}

// greet reads the server greeting and answers with client flags.
func (w *wire) greet(flags uint32) {
	w.t.Helper()
	var hello [18]byte
	if _, err := io.ReadFull(w.conn, hello[:]); err != nil {
		w.t.Fatalf("greeting: %v", err)
	}
	if binary.BigEndian.Uint64(hello[:]) != magicInit || binary.BigEndian.Uint64(hello[8:]) != magicOpt {
		w.t.Fatalf("greeting %x", hello)
	}
	w.send(binary.BigEndian.AppendUint32(nil, flags))
}

func (w *wire) send(b []byte) {
	w.t.Helper()
	if _, err := w.conn.Write(b); err != nil {
		w.t.Fatalf("write: %v", err)
	}
}

// optionReply reads one option reply and its data.
func (w *wire) optionReply() (optionReply, []byte) {
	w.t.Helper()
	var hdr [optReplyHeaderLen]byte
	if _, err := io.ReadFull(w.conn, hdr[:]); err != nil {
		w.t.Fatalf("option reply: %v", err)
	}
	r, err := parseOptionReply(hdr[:])
	if err != nil {
		w.t.Fatal(err)
	}
	data := make([]byte, r.Length)
	if _, err := io.ReadFull(w.conn, data); err != nil {
		w.t.Fatal(err)
	}
	return r, data
}

// goStructured negotiates structured replies, base:allocation and the
// default export, reading every reply.
func (w *wire) goStructured() {
	w.t.Helper()
	w.greet(flagCFixedNewstyle | flagCNoZeroes)
	w.send(appendOption(nil, optStructuredReply, nil))
	if r, _ := w.optionReply(); r.Type != repAck {
		w.t.Fatalf("structured reply: %#x", r.Type)
	}
	w.send(appendOption(nil, optGo, appendInfoRequest(nil, "", infoBlockSize)))
	for {
		r, _ := w.optionReply()
		if r.Type == repAck {
			return
		}
		if r.Type != repInfo {
			w.t.Fatalf("NBD_OPT_GO: reply %#x", r.Type)
		}
	}
}

// chunk reads one structured reply chunk.
func (w *wire) chunk() (chunkHeader, []byte) {
	w.t.Helper()
	var b [chunkHeaderLen]byte
	if _, err := io.ReadFull(w.conn, b[:]); err != nil {
		w.t.Fatalf("reply chunk: %v", err)
	}
	if binary.BigEndian.Uint32(b[:]) != magicStructured {
		w.t.Fatalf("chunk magic %x", b[:4])
	}
	h := chunkHeader{Flags: binary.BigEndian.Uint16(b[4:]), Type: binary.BigEndian.Uint16(b[6:]),
		Handle: binary.BigEndian.Uint64(b[8:]), Length: binary.BigEndian.Uint32(b[16:])}
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(w.conn, p); err != nil {
		w.t.Fatal(err)
	}
	return h, p
}

// errorOf reads a reply and returns its error value (0 for success).
func (w *wire) errorOf(handle uint64) uint32 {
	w.t.Helper()
	for {
		h, p := w.chunk()
		if h.Handle != handle {
			w.t.Fatalf("reply for handle %d, want %d", h.Handle, handle)
		}
		if h.Type&(1<<15) != 0 {
			errno := binary.BigEndian.Uint32(p)
			for h.Flags&replyFlagDone == 0 {
				h, _ = w.chunk()
			}
			return errno
		}
		if h.Flags&replyFlagDone != 0 {
			return 0
		}
	}
}

// closed reports whether the server closed the connection (EOF or reset)
// within 10 s, reading and dropping anything it still sends.
func (w *wire) closed() bool {
	w.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, w.conn)
	var ne net.Error
	return err == nil || !(errors.As(err, &ne) && ne.Timeout())
}

func TestHostileHandshakes(t *testing.T) {
	img, _ := memImage(t, 1<<20)
	srv := &Server{Exports: []*Export{{Image: img}}, MaxOptions: 8, HandshakeTimeout: 300 * time.Millisecond}
	s := serve(t, srv)

	t.Run("unknown client flags", func(t *testing.T) {
		w := dialWire(t, s)
		w.greet(1 << 7)
		if !w.closed() {
			t.Error("not disconnected")
		}
	})
	t.Run("bad option magic", func(t *testing.T) {
		w := dialWire(t, s)
		w.greet(flagCFixedNewstyle)
		w.send(bytes.Repeat([]byte{0xee}, optHeaderLen))
		if !w.closed() {
			t.Error("not disconnected")
		}
	})
	t.Run("oversized option", func(t *testing.T) {
		w := dialWire(t, s)
		w.greet(flagCFixedNewstyle)
		hdr := appendOption(nil, optList, nil)
		binary.BigEndian.PutUint32(hdr[12:], 1<<30) // 1 GiB of option data announced, none sent
		w.send(hdr)
		if !w.closed() {
			t.Error("not disconnected")
		}
	})
	t.Run("option flood", func(t *testing.T) {
		w := dialWire(t, s)
		w.greet(flagCFixedNewstyle)
		for i := 0; i < srv.MaxOptions; i++ {
			w.send(appendOption(nil, 999, nil))
			if r, _ := w.optionReply(); r.Type != repErrUnsup {
				t.Fatalf("unknown option %d: reply %#x, want NBD_REP_ERR_UNSUP", i, r.Type)
			}
		}
		w.send(appendOption(nil, 999, nil))
		if !w.closed() {
			t.Errorf("still connected after %d options", srv.MaxOptions+1)
		}
	})
	t.Run("malformed info request", func(t *testing.T) {
		w := dialWire(t, s)
		w.greet(flagCFixedNewstyle)
		bad := binary.BigEndian.AppendUint32(nil, 4000) // a name longer than the data
		w.send(appendOption(nil, optGo, append(bad, 0, 0)))
		if r, _ := w.optionReply(); r.Type != repErrInvalid {
			t.Errorf("reply %#x, want NBD_REP_ERR_INVALID", r.Type)
		}
		w.send(appendOption(nil, optGo, appendInfoRequest(nil, "nope")))
		if r, _ := w.optionReply(); r.Type != repErrUnknown {
			t.Errorf("unknown export: reply %#x, want NBD_REP_ERR_UNKNOWN", r.Type)
		}
		w.send(appendOption(nil, optSetMetaContext, appendMetaRequest(nil, "", metaBaseAllocation)))
		if r, _ := w.optionReply(); r.Type != repErrInvalid {
			t.Errorf("meta context before structured replies: reply %#x, want NBD_REP_ERR_INVALID", r.Type)
		}
	})
	t.Run("slowloris handshake", func(t *testing.T) {
		w := dialWire(t, s)
		w.greet(flagCFixedNewstyle)
		w.send(appendOption(nil, optList, nil)[:5]) // part of a header, then nothing
		if !w.closed() {
			t.Error("a stalled handshake was not closed")
		}
	})
}

func TestHostileRequests(t *testing.T) {
	img, data := memImage(t, 1<<20)
	srv := &Server{Exports: []*Export{{Image: img, MaxPayload: 64 << 10}}, RequestTimeout: 300 * time.Millisecond}
	s := serve(t, srv)
	read := func(w *wire, handle, off uint64, n uint32) {
		w.send(request{Type: cmdRead, Handle: handle, Offset: off, Length: n}.append(nil))
	}
	t.Run("errors keep the connection", func(t *testing.T) {
		w := dialWire(t, s)
		w.goStructured()
		cases := []struct {
			req  request
			data []byte
			want uint32
		}{
			{request{Type: cmdRead, Offset: 0, Length: 128 << 10}, nil, errInval},       // over the maximum payload
			{request{Type: cmdRead, Offset: 1<<20 - 4096, Length: 8192}, nil, errInval}, // past the end
			{request{Type: cmdRead, Offset: 1<<64 - 4096, Length: 8192}, nil, errInval}, // offset wraps
			{request{Type: cmdWrite, Offset: 0, Length: 16}, make([]byte, 16), errPerm}, // read-only export
			{request{Type: cmdWrite, Offset: 1 << 20, Length: 16}, make([]byte, 16), errNoSpc},
			{request{Type: 77}, nil, errInval},                                  // unknown command
			{request{Type: cmdRead, Flags: 1 << 9, Length: 512}, nil, errInval}, // unknown flag
			{request{Type: cmdBlockStatus, Length: 4096}, nil, errInval},        // no meta context
			{request{Type: cmdWriteZeroes, Flags: cmdFlagFastZero, Length: 4096}, nil, errPerm},
		}
		for i, c := range cases {
			c.req.Handle = uint64(100 + i)
			w.send(append(c.req.append(nil), c.data...))
			if got := w.errorOf(c.req.Handle); got != c.want {
				t.Errorf("%+v: error %d, want %d", c.req, got, c.want)
			}
		}
		read(w, 1, 4096, 512)
		h, p := w.chunk()
		if h.Type != replyOffsetData || !bytes.Equal(p[8:], data[4096:4608]) {
			t.Errorf("read after errors: chunk type %d", h.Type)
		}
	})
	t.Run("oversized write disconnects", func(t *testing.T) {
		w := dialWire(t, s)
		w.goStructured()
		w.send(request{Type: cmdWrite, Handle: 9, Length: 1 << 30}.append(nil))
		if got := w.errorOf(9); got != errInval {
			t.Errorf("error %d, want EINVAL", got)
		}
		if !w.closed() {
			t.Error("not disconnected after a write it cannot skip")
		}
	})
	t.Run("bad request magic", func(t *testing.T) {
		w := dialWire(t, s)
		w.goStructured()
		w.send(bytes.Repeat([]byte{0x5a}, requestLen))
		if !w.closed() {
			t.Error("not disconnected")
		}
	})
	t.Run("slowloris request", func(t *testing.T) {
		w := dialWire(t, s)
		w.goStructured()
		w.send(request{Type: cmdRead, Length: 512}.append(nil)[:9])
		if !w.closed() {
			t.Error("a stalled request was not closed")
		}
	})
}

// TestBoundedMemoryAndVanishedClients: clients that pipeline large reads
// and never read the replies hold at most InFlightBytes each; clients that
// vanish mid-request have their state freed.
func TestBoundedMemoryAndVanishedClients(t *testing.T) {
	img, _ := memImage(t, 8<<20)
	var closedConns atomic.Int64
	closedCh := make(chan struct{}, 64)
	srv := &Server{Exports: []*Export{{Image: img, MaxPayload: 1 << 20}}, InFlightBytes: 2 << 20,
		ConnState: func(_ net.Conn, st ConnState) {
			if st == StateClosed {
				closedConns.Add(1)
				closedCh <- struct{}{}
			}
		}}
	s := serve(t, srv)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	const clients, requests = 8, 64 // 8 × 64 MiB asked for
	var wires []*wire
	for i := 0; i < clients; i++ {
		w := dialWire(t, s)
		w.goStructured()
		var batch []byte
		for j := 0; j < requests; j++ {
			batch = request{Type: cmdRead, Handle: uint64(j), Offset: uint64(j%8) << 20, Length: 1 << 20}.append(batch)
		}
		// The server stops reading when its budget is spent: send in the
		// background, as a client blocked on a full socket would.
		go w.conn.Write(batch)
		wires = append(wires, w)
	}
	// Every connection's budget fills up (then the server stops reading
	// its requests); wait for that, 20 s at most.
	const budget = clients * (2 << 20)
	deadline := time.Now().Add(20 * time.Second)
	for srv.BufferedBytes() < budget && time.Now().Before(deadline) {
		runtime.Gosched()
	}
	if got := srv.BufferedBytes(); got != budget {
		t.Errorf("the server holds %d bytes for %d stalled clients, want their budgets' %d", got, clients, budget)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	if limit := int64(budget) + 8<<20; grown > limit {
		t.Errorf("heap grew by %d MiB for %d stalled clients (limit %d MiB)", grown>>20, clients, limit>>20)
	}
	for _, w := range wires {
		w.conn.Close() // vanish without NBD_CMD_DISC
	}
	timeout := time.After(20 * time.Second)
	for closedConns.Load() < clients {
		select {
		case <-closedCh:
		case <-timeout:
			t.Fatalf("%d of %d vanished clients were freed after 20 s", closedConns.Load(), clients)
		}
	}
}

// TestManyConnections: 40 clients at once on a read-only export, each
// reading and checking its own part through the Client.
func TestManyConnections(t *testing.T) {
	const conns = 40
	img, data := memImage(t, conns<<16)
	var active, peak atomic.Int64
	srv := &Server{Exports: []*Export{{Image: img}}, ConnState: func(_ net.Conn, st ConnState) {
		switch st {
		case StateActive:
			n := active.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
		case StateClosed:
			active.Add(-1)
		}
	}}
	s := serve(t, srv)
	clients := make([]*Client, conns)
	for i := range clients {
		c, err := Dial(context.Background(), s.url, DialOptions{})
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	if c := clients[0]; c.ExportFlags()&FlagCanMultiConn == 0 {
		t.Error("a read-only export without multi-conn")
	}
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1<<16)
			for round := 0; round < 8; round++ {
				off := int64((i+round)%conns) << 16
				if _, err := c.ReadAt(buf, off); err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(buf, data[off:off+1<<16]) {
					errs <- errors.New("wrong bytes")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if p := peak.Load(); p < conns {
		t.Errorf("at most %d connections were active at once, want %d", p, conns)
	}
	for _, c := range clients {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	}
}
