package nbd

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/vdiskio/vdisk/formats"
)

// DialOptions control a client connection. The zero value connects
// read-only with a 30 s handshake timeout.
type DialOptions struct {
	// Writable allows WriteAt, WriteZeroes, Trim (the export must allow them).
	Writable bool
	// TLSConfig is used for nbds:// addresses; nil verifies the server
	// against the system roots with the URL's host name.
	TLSConfig *tls.Config
	// Timeout bounds connecting and the handshake (default 30 s).
	Timeout time.Duration
}

// Client is an open NBD export, usable as a formats.File: ReadAt, WriteAt
// (when writable), Size, Sync (NBD_CMD_FLUSH) and Close (NBD_CMD_DISC), plus
// Extents from base:allocation block status, and WriteZeroes/Trim. It is safe
// for concurrent use: requests from many goroutines are pipelined on the one
// connection.
type Client struct {
	conn     net.Conn
	name     string // the URL, for messages
	export   string
	size     int64
	flags    uint16
	writable bool
	// structured replies negotiated; metaID is base:allocation's context
	// id when hasMeta (qemu-nbd numbers it 0).
	structured bool
	hasMeta    bool
	metaID     uint32
	minBlock   uint32
	prefBlock  uint32
	maxPayload uint32

	wmu sync.Mutex // one request at a time on the wire

	mu      sync.Mutex
	calls   map[uint64]*call
	handle  uint64
	fatal   error // the connection is dead
	closing bool
	done    chan struct{} // the reply reader has stopped
}

// call is one request waiting for its reply.
type call struct {
	req  request
	buf  []byte            // READ: where the data goes
	exts []blockDescriptor // BLOCK_STATUS answer
	// covered counts the bytes of a read that data and hole chunks filled.
	covered uint64
	err     error
	done    chan struct{}
}

type blockDescriptor struct {
	length uint32
	flags  uint32
}

// Dial connects to an NBD URL (see ParseURL) and negotiates the export.
func Dial(ctx context.Context, name string, opts DialOptions) (*Client, error) {
	addr, err := ParseURL(name)
	if err != nil {
		return nil, err
	}
	timeout := positive(opts.Timeout, 30*time.Second)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, addr.Network, addr.Addr)
	if err != nil {
		return nil, fmt.Errorf("nbd: %s: %w", name, err)
	}
	if addr.TLS && opts.TLSConfig == nil {
		host, _, _ := net.SplitHostPort(addr.Addr)
		opts.TLSConfig = &tls.Config{ServerName: host}
	}
	if !addr.TLS {
		opts.TLSConfig = nil
	}
	c, err := NewClient(ctx, conn, name, addr.Export, opts)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// NewClient negotiates export on an open connection (TLS first when
// opts.TLSConfig is set). name is used in messages. On error the caller
// closes conn.
func NewClient(ctx context.Context, conn net.Conn, name, export string, opts DialOptions) (*Client, error) {
	c := &Client{conn: conn, name: name, export: export, writable: opts.Writable,
		minBlock: 1, prefBlock: 4096, maxPayload: DefaultMaxPayload,
		calls: map[uint64]*call{}, done: make(chan struct{})}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(positive(opts.Timeout, 30*time.Second))
	}
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	err := c.handshake(opts.TLSConfig)
	stop()
	if err != nil {
		return nil, fmt.Errorf("nbd: %s: %w", name, err)
	}
	c.conn.SetDeadline(time.Time{})
	if c.flags&FlagReadOnly != 0 && c.writable {
		c.conn.Close()
		return nil, fmt.Errorf("nbd: %s: %w: the server exports %q read-only", name, formats.ErrReadOnly, export)
	}
	go c.readReplies()
	return c, nil
}

// handshake runs the client side of the fixed newstyle negotiation.
func (c *Client) handshake(tlsConfig *tls.Config) error {
	var hello [18]byte
	if err := readFull(c.conn, hello[:]); err != nil {
		return fmt.Errorf("reading the greeting: %w", err)
	}
	if m := binary.BigEndian.Uint64(hello[:]); m != magicInit {
		return protoErr("greeting magic %#x, want NBDMAGIC", m)
	}
	if m := binary.BigEndian.Uint64(hello[8:]); m != magicOpt {
		return protoErr("oldstyle or unknown negotiation (magic %#x): only fixed newstyle is supported", m)
	}
	hflags := binary.BigEndian.Uint16(hello[16:])
	if hflags&flagFixedNewstyle == 0 {
		return protoErr("the server does not speak fixed newstyle negotiation")
	}
	cflags := uint32(flagCFixedNewstyle)
	noZeroes := hflags&flagNoZeroes != 0
	if noZeroes {
		cflags |= flagCNoZeroes
	}
	if _, err := c.conn.Write(binary.BigEndian.AppendUint32(nil, cflags)); err != nil {
		return err
	}
	if tlsConfig != nil {
		if err := c.startTLS(tlsConfig); err != nil {
			return err
		}
	}
	if typ, _, err := c.option(optStructuredReply, nil, nil); err != nil {
		return err
	} else if typ == repAck {
		c.structured = true
	}
	if c.structured {
		if err := c.setMeta(); err != nil {
			return err
		}
	}
	return c.goExport(noZeroes)
}

func (c *Client) startTLS(cfg *tls.Config) error {
	typ, msg, err := c.option(optStartTLS, nil, nil)
	if err != nil {
		return err
	}
	if typ != repAck {
		return fmt.Errorf("the server refused TLS: %s", repError(typ, msg))
	}
	tc := tls.Client(c.conn, cfg)
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	c.conn = tc
	return nil
}

func (c *Client) setMeta() error {
	typ, msg, err := c.option(optSetMetaContext, appendMetaRequest(nil, c.export, metaBaseAllocation), func(data []byte) error {
		if len(data) < 4 {
			return protoErr("meta context reply of %d bytes", len(data))
		}
		if string(data[4:]) == metaBaseAllocation {
			c.metaID, c.hasMeta = binary.BigEndian.Uint32(data), true
		}
		return nil
	})
	if err != nil {
		return err
	}
	if typ != repAck {
		c.hasMeta = false // no block status: everything reads as data
	}
	_ = msg
	return nil
}

// goExport sends NBD_OPT_GO (or NBD_OPT_EXPORT_NAME to an old server).
func (c *Client) goExport(noZeroes bool) error {
	gotExport := false
	typ, msg, err := c.option(optGo, appendInfoRequest(nil, c.export, infoBlockSize), func(data []byte) error {
		if len(data) < 2 {
			return protoErr("info reply of %d bytes", len(data))
		}
		switch binary.BigEndian.Uint16(data) {
		case infoExport:
			if len(data) != 12 {
				return protoErr("NBD_INFO_EXPORT of %d bytes", len(data))
			}
			c.size, c.flags, gotExport = int64(binary.BigEndian.Uint64(data[2:])), binary.BigEndian.Uint16(data[10:]), true
		case infoBlockSize:
			if len(data) != 14 {
				return protoErr("NBD_INFO_BLOCK_SIZE of %d bytes", len(data))
			}
			c.minBlock, c.prefBlock, c.maxPayload = binary.BigEndian.Uint32(data[2:]), binary.BigEndian.Uint32(data[6:]), binary.BigEndian.Uint32(data[10:])
		}
		return nil
	})
	if err != nil {
		return err
	}
	switch typ {
	case repAck:
	case repErrUnsup:
		return c.exportName(noZeroes)
	case repErrUnknown:
		return fmt.Errorf("no export %q on the server: %s", c.export, msg)
	case repErrTLSReqd:
		return fmt.Errorf("the server requires TLS (use nbds:// or nbds+unix://): %s", msg)
	default:
		return fmt.Errorf("NBD_OPT_GO %q: %s", c.export, repError(typ, msg))
	}
	if !gotExport {
		return protoErr("NBD_OPT_GO succeeded without NBD_INFO_EXPORT")
	}
	return c.checkExport()
}

func (c *Client) exportName(noZeroes bool) error {
	if _, err := c.conn.Write(appendOption(nil, optExportName, []byte(c.export))); err != nil {
		return err
	}
	n := 10
	if !noZeroes {
		n += 124
	}
	b := make([]byte, n)
	if err := readFull(c.conn, b); err != nil {
		return fmt.Errorf("NBD_OPT_EXPORT_NAME %q: %w", c.export, err)
	}
	c.size, c.flags = int64(binary.BigEndian.Uint64(b)), binary.BigEndian.Uint16(b[8:])
	return c.checkExport()
}

// checkExport validates what the server said about the export.
func (c *Client) checkExport() error {
	pow2 := func(v uint32) bool { return v != 0 && v&(v-1) == 0 }
	switch {
	case c.size < 0:
		return protoErr("export size %d", uint64(c.size))
	case c.flags&FlagHasFlags == 0:
		return protoErr("transmission flags %#x without NBD_FLAG_HAS_FLAGS", c.flags)
	case !pow2(c.minBlock) || c.minBlock > 64<<10 || !pow2(c.prefBlock) || c.maxPayload < c.minBlock:
		return protoErr("block sizes %d/%d/%d", c.minBlock, c.prefBlock, c.maxPayload)
	}
	c.maxPayload = min(c.maxPayload, DefaultMaxPayload)
	c.maxPayload -= c.maxPayload % c.minBlock
	return nil
}

// option sends an option and reads replies until the final one, passing
// the data of intermediate ones (INFO, META_CONTEXT, SERVER) to each. It
// returns the final reply type and its message.
func (c *Client) option(opt uint32, data []byte, each func([]byte) error) (uint32, string, error) {
	if _, err := c.conn.Write(appendOption(nil, opt, data)); err != nil {
		return 0, "", err
	}
	var hdr [optReplyHeaderLen]byte
	for i := 0; i < 1<<16; i++ {
		if err := readFull(c.conn, hdr[:]); err != nil {
			return 0, "", fmt.Errorf("reading the reply to option %d: %w", opt, err)
		}
		r, err := parseOptionReply(hdr[:])
		if err != nil {
			return 0, "", err
		}
		if r.Option != opt {
			return 0, "", protoErr("reply to option %d while waiting for %d", r.Option, opt)
		}
		if r.Length > maxOptionData {
			return 0, "", protoErr("option reply of %d bytes", r.Length)
		}
		payload := make([]byte, r.Length)
		if err := readFull(c.conn, payload); err != nil {
			return 0, "", err
		}
		switch {
		case r.Type == repAck || r.Type&(1<<31) != 0:
			return r.Type, string(payload), nil
		case each != nil && (r.Type == repInfo || r.Type == repMetaContext || r.Type == repServer):
			if err := each(payload); err != nil {
				return 0, "", err
			}
		case r.Type == repInfo || r.Type == repMetaContext || r.Type == repServer:
		default:
			return 0, "", protoErr("option reply type %d", r.Type)
		}
	}
	return 0, "", protoErr("too many replies to option %d", opt)
}

func repError(typ uint32, msg string) string {
	names := map[uint32]string{repErrUnsup: "unsupported", repErrPolicy: "refused by policy", repErrInvalid: "invalid",
		repErrPlatform: "not on this platform", repErrTLSReqd: "TLS required", repErrUnknown: "unknown export",
		repErrShutdown: "server shutting down", repErrBlockSizeReqd: "block size required", repErrTooBig: "too big"}
	s := names[typ]
	if s == "" {
		s = fmt.Sprintf("reply %#x", typ)
	}
	if msg != "" {
		s += ": " + msg
	}
	return s
}

// ExportFlags are the export's transmission flags (FlagReadOnly, ...).
func (c *Client) ExportFlags() uint16 { return c.flags }

// BlockSizes are the server's minimum, preferred and maximum payload sizes.
func (c *Client) BlockSizes() (minimum, preferred, maxPayload uint32) {
	return c.minBlock, c.prefBlock, c.maxPayload
}

// CanBlockStatus reports whether the server answers base:allocation.
func (c *Client) CanBlockStatus() bool { return c.hasMeta }

// Name is the URL the client was opened with.
func (c *Client) Name() string { return c.name }

// Size is the export size.
func (c *Client) Size() (int64, error) { return c.size, nil }

// Truncate succeeds only for the export's own size: an NBD export cannot
// change size.
func (c *Client) Truncate(size int64) error {
	if size == c.size {
		return nil
	}
	return fmt.Errorf("%s: %w: an NBD export has a fixed size of %d bytes (cannot truncate to %d)", c.name, formats.ErrUnsupported, c.size, size)
}

// Close flushes a writable export (NBD_CMD_FLUSH), sends NBD_CMD_DISC once
// every pending request is answered, and closes the connection.
func (c *Client) Close() error {
	var flushErr error
	if c.writable {
		flushErr = c.Sync()
	}
	if err := c.close(); flushErr == nil {
		flushErr = err
	}
	return flushErr
}

func (c *Client) close() error {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return nil
	}
	c.closing = true
	pending := make([]*call, 0, len(c.calls))
	for _, cl := range c.calls {
		pending = append(pending, cl)
	}
	fatal := c.fatal
	c.mu.Unlock()
	for _, cl := range pending {
		<-cl.done
	}
	if fatal == nil {
		c.wmu.Lock()
		c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		c.conn.Write(request{Type: cmdDisc}.append(nil))
		c.wmu.Unlock()
	}
	err := c.conn.Close()
	<-c.done
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// errClosed is returned by requests on a closed client.
var errClosed = errors.New("nbd: client closed")

// start registers a call and sends its request (with payload for writes).
func (c *Client) start(req request, buf, payload []byte) (*call, error) {
	cl := &call{req: req, buf: buf, done: make(chan struct{})}
	c.mu.Lock()
	if c.fatal != nil {
		c.mu.Unlock()
		return nil, c.fatal
	}
	if c.closing {
		c.mu.Unlock()
		return nil, errClosed
	}
	c.handle++
	cl.req.Handle = c.handle
	c.calls[cl.req.Handle] = cl
	c.mu.Unlock()
	c.wmu.Lock()
	bufs := net.Buffers{cl.req.append(make([]byte, 0, requestLen))}
	if payload != nil {
		bufs = append(bufs, payload)
	}
	_, err := bufs.WriteTo(c.conn)
	c.wmu.Unlock()
	if err != nil {
		c.fail(fmt.Errorf("nbd: %s: sending a request: %w", c.name, err))
	}
	return cl, nil
}

// wait waits for a call's reply.
func (c *Client) wait(cl *call) error {
	<-cl.done
	return cl.err
}

// fail marks the connection dead and fails every pending call.
func (c *Client) fail(err error) {
	c.mu.Lock()
	if c.fatal == nil {
		c.fatal = err
	}
	calls := c.calls
	c.calls = map[uint64]*call{}
	c.mu.Unlock()
	c.conn.Close()
	for _, cl := range calls {
		if cl.err == nil {
			cl.err = err
		}
		close(cl.done)
	}
}

// readReplies is the reply reader: it matches replies to calls by handle.
func (c *Client) readReplies() {
	defer close(c.done)
	for {
		if err := c.readReply(); err != nil {
			c.mu.Lock()
			closing := c.closing && len(c.calls) == 0
			c.mu.Unlock()
			if closing {
				err = errClosed
			} else if !errors.Is(err, ErrProtocol) {
				err = fmt.Errorf("nbd: %s: connection lost: %w", c.name, err)
			} else {
				err = fmt.Errorf("nbd: %s: %w", c.name, err)
			}
			c.fail(err)
			return
		}
	}
}

func (c *Client) lookup(handle uint64) (*call, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.calls[handle]
	if cl == nil {
		return nil, protoErr("reply for unknown handle %d", handle)
	}
	return cl, nil
}

func (c *Client) finish(cl *call) {
	c.mu.Lock()
	delete(c.calls, cl.req.Handle)
	c.mu.Unlock()
	close(cl.done)
}

func (c *Client) readReply() error {
	var magic [4]byte
	if err := readFull(c.conn, magic[:]); err != nil {
		return err
	}
	switch m := binary.BigEndian.Uint32(magic[:]); m {
	case magicSimple:
		return c.readSimple()
	case magicStructured:
		if !c.structured {
			return protoErr("structured reply without negotiation")
		}
		return c.readChunk()
	default:
		return protoErr("reply magic %#x", m)
	}
}

func (c *Client) readSimple() error {
	var b [12]byte
	if err := readFull(c.conn, b[:]); err != nil {
		return err
	}
	errno, handle := binary.BigEndian.Uint32(b[:]), binary.BigEndian.Uint64(b[4:])
	cl, err := c.lookup(handle)
	if err != nil {
		return err
	}
	if errno != 0 {
		cl.err = c.requestError(cl.req, errno, "", -1)
	} else if cl.req.Type == cmdRead {
		if c.structured {
			return protoErr("simple reply with data to a read after structured replies were negotiated")
		}
		if err := readFull(c.conn, cl.buf); err != nil {
			return err
		}
	}
	c.finish(cl)
	return nil
}

// readChunk reads one structured reply chunk.
func (c *Client) readChunk() error {
	var b [16]byte
	if err := readFull(c.conn, b[:]); err != nil {
		return err
	}
	h := chunkHeader{Flags: binary.BigEndian.Uint16(b[:]), Type: binary.BigEndian.Uint16(b[2:]),
		Handle: binary.BigEndian.Uint64(b[4:]), Length: binary.BigEndian.Uint32(b[12:])}
	cl, err := c.lookup(h.Handle)
	if err != nil {
		return err
	}
	if h.Type == replyOffsetData {
		err = c.readDataChunk(cl, h)
	} else {
		if h.Length > maxChunkPayload {
			return protoErr("reply chunk type %d of %d bytes", h.Type, h.Length)
		}
		payload := make([]byte, h.Length)
		if err := readFull(c.conn, payload); err != nil {
			return err
		}
		err = c.chunk(cl, h, payload)
	}
	if err != nil {
		return err
	}
	if h.Flags&replyFlagDone != 0 {
		if cl.req.Type == cmdRead && cl.err == nil && cl.covered != uint64(cl.req.Length) {
			return protoErr("read %d+%d answered with %d bytes", cl.req.Offset, cl.req.Length, cl.covered)
		}
		if cl.req.Type == cmdBlockStatus && cl.err == nil && len(cl.exts) == 0 {
			return protoErr("block status %d+%d answered without descriptors", cl.req.Offset, cl.req.Length)
		}
		c.finish(cl)
	}
	return nil
}

// maxChunkPayload bounds a chunk other than data: a block status reply of
// 2^20 descriptors (the most proto.md lets a server send) and its id.
const maxChunkPayload = 4 + 8<<20

// readDataChunk reads OFFSET_DATA straight into the caller's buffer.
func (c *Client) readDataChunk(cl *call, h chunkHeader) error {
	if cl.req.Type != cmdRead || h.Length < 9 {
		return protoErr("data chunk of %d bytes for command %d", h.Length, cl.req.Type)
	}
	var ob [8]byte
	if err := readFull(c.conn, ob[:]); err != nil {
		return err
	}
	off, n := binary.BigEndian.Uint64(ob[:]), uint64(h.Length-8)
	if off < cl.req.Offset || off+n > cl.req.Offset+uint64(cl.req.Length) || off+n < off {
		return protoErr("data chunk %d+%d outside the read %d+%d", off, n, cl.req.Offset, cl.req.Length)
	}
	cl.covered += n
	return readFull(c.conn, cl.buf[off-cl.req.Offset:off-cl.req.Offset+n])
}

// chunk handles a structured chunk other than data.
func (c *Client) chunk(cl *call, h chunkHeader, p []byte) error {
	switch h.Type {
	case replyNone:
		if len(p) != 0 || h.Flags&replyFlagDone == 0 {
			return protoErr("NBD_REPLY_TYPE_NONE with %d bytes, flags %#x", len(p), h.Flags)
		}
	case replyOffsetHole:
		if cl.req.Type != cmdRead || len(p) != 12 {
			return protoErr("hole chunk of %d bytes for command %d", len(p), cl.req.Type)
		}
		off, n := binary.BigEndian.Uint64(p), uint64(binary.BigEndian.Uint32(p[8:]))
		if n == 0 || off < cl.req.Offset || off+n > cl.req.Offset+uint64(cl.req.Length) {
			return protoErr("hole chunk %d+%d outside the read %d+%d", off, n, cl.req.Offset, cl.req.Length)
		}
		clear(cl.buf[off-cl.req.Offset : off-cl.req.Offset+n])
		cl.covered += n
	case replyBlockStatus:
		if cl.req.Type != cmdBlockStatus || len(p) < 12 || (len(p)-4)%8 != 0 {
			return protoErr("block status chunk of %d bytes for command %d", len(p), cl.req.Type)
		}
		if binary.BigEndian.Uint32(p) != c.metaID {
			return nil // a context we did not ask for
		}
		for i := 4; i < len(p); i += 8 {
			cl.exts = append(cl.exts, blockDescriptor{length: binary.BigEndian.Uint32(p[i:]), flags: binary.BigEndian.Uint32(p[i+4:])})
		}
	default:
		if h.Type&(1<<15) == 0 {
			return protoErr("unknown reply chunk type %d", h.Type)
		}
		if len(p) < 6 {
			return protoErr("error chunk of %d bytes", len(p))
		}
		errno, mlen := binary.BigEndian.Uint32(p), int(binary.BigEndian.Uint16(p[4:]))
		if mlen > len(p)-6 {
			return protoErr("error message of %d bytes in a %d-byte chunk", mlen, len(p))
		}
		off := int64(-1)
		if h.Type == replyErrorOffset && len(p) >= 6+mlen+8 {
			off = int64(binary.BigEndian.Uint64(p[6+mlen:]))
		}
		if cl.err == nil {
			cl.err = c.requestError(cl.req, errno, string(p[6:6+mlen]), off)
		}
	}
	return nil
}

// Errors a request can fail with, by the server's error value.
var (
	// ErrNotSupported is NBD_ENOTSUP: a fast zero the server cannot do fast.
	ErrNotSupported = errors.New("operation not supported by the NBD server")
)

// requestError turns an error value into an error naming the request.
func (c *Client) requestError(req request, errno uint32, msg string, off int64) error {
	names := map[uint16]string{cmdRead: "read", cmdWrite: "write", cmdFlush: "flush", cmdTrim: "trim",
		cmdWriteZeroes: "write zeroes", cmdBlockStatus: "block status", cmdCache: "cache"}
	var kind error
	switch errno {
	case errPerm:
		kind = formats.ErrReadOnly
	case errNotSup:
		kind = ErrNotSupported
	case errNoSpc:
		kind = io.ErrShortWrite
	default:
		kind = errnoError(errno)
	}
	where := fmt.Sprintf("%d+%d", req.Offset, req.Length)
	if off >= 0 {
		where = fmt.Sprintf("offset %d", off)
	}
	s := fmt.Sprintf("%s: %s at %s", c.name, names[req.Type], where)
	if msg != "" {
		s += ": " + msg
	}
	return fmt.Errorf("%s: %w", s, kind)
}

type errnoError uint32

func (e errnoError) Error() string {
	switch e {
	case errIO:
		return "input/output error (EIO)"
	case errNoMem:
		return "out of memory (ENOMEM)"
	case errInval:
		return "invalid argument (EINVAL)"
	case errOverflow:
		return "value too large (EOVERFLOW)"
	case errShutdown:
		return "server shutting down (ESHUTDOWN)"
	}
	return fmt.Sprintf("NBD error %d", uint32(e))
}
