package nbd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vdiskio/vdisk/formats"
)

// Export is one image a Server offers under a name.
type Export struct {
	// Name is what clients ask for ("" is the default export).
	Name string
	// Description is shown by `nbdinfo --list`; optional.
	Description string
	// Image is the disk served. Writes need a formats.Writable and Writable
	// set; TRIM and WRITE_ZEROES use formats.ZeroWriter when the image has it.
	Image formats.Image
	// Writable allows writes; otherwise the export is read-only and offers
	// multi-conn (every connection sees the same bytes).
	Writable bool
	// Sync, when set, is called on FLUSH and on FUA writes after the image's
	// Flush, to make the image's file durable (fsync).
	Sync func() error
	// Block size constraints (NBD_INFO_BLOCK_SIZE); zero means the defaults:
	// 1, 4096 (or the image's cluster size, up to 64 KiB) and 32 MiB.
	MinBlock, PreferredBlock, MaxPayload uint32

	// mu orders mutations (write, zero, flush) against each other and
	// against reads: drivers are safe for concurrent reads only.
	mu sync.RWMutex
}

// Default limits of a Server.
const (
	DefaultMaxConnections   = 128
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultRequestTimeout   = 60 * time.Second
	DefaultMaxOptions       = 256
	DefaultInFlightBytes    = 64 << 20
	DefaultInFlight         = 16
	DefaultMaxPayload       = 32 << 20
	// maxOptionData bounds one option's data; longer is a hard disconnect.
	maxOptionData = 64 << 10
)

// ConnState is a connection's state change, reported to Server.ConnState.
type ConnState int

const (
	StateNew    ConnState = iota // accepted
	StateActive                  // handshake done, transmission started
	StateClosed                  // closed and every resource released
)

// Server serves exports over NBD: fixed newstyle handshake, NBD_OPT_GO,
// INFO, LIST, structured replies, the base:allocation meta context, block
// size constraints, FLUSH, TRIM, WRITE_ZEROES (with FAST_ZERO) and, when
// TLSConfig is set, STARTTLS (required before anything else). The zero value
// serves nothing; its limits are the defaults above.
type Server struct {
	Exports []*Export
	// TLSConfig, when set, makes TLS mandatory (proto.md FORCEDTLS mode).
	TLSConfig *tls.Config
	// MaxConnections is how many clients are served at once; further
	// connections wait in the listen queue (qemu-nbd --shared).
	MaxConnections int
	// StopWhenIdle makes Serve return when the last client disconnects
	// (qemu-nbd without --persistent).
	StopWhenIdle bool
	// HandshakeTimeout bounds the whole option negotiation (slow clients).
	HandshakeTimeout time.Duration
	// RequestTimeout bounds the transfer of one request once its first byte
	// arrived, and of each reply; an idle connection may wait forever.
	RequestTimeout time.Duration
	// MaxOptions is how many options one handshake may send.
	MaxOptions int
	// InFlightBytes bounds the payload bytes buffered per connection
	// (requests being read, executed or answered); InFlight bounds their count.
	InFlightBytes int64
	InFlight      int
	// ConnState, when set, is told of each connection's state changes.
	ConnState func(net.Conn, ConnState)
	// Logf, when set, receives one line per failed connection.
	Logf func(format string, args ...any)

	buffered atomic.Int64 // payload bytes held by requests, all connections
}

// BufferedBytes is how many request and reply payload bytes the server
// holds right now, over all connections (at most InFlightBytes each).
func (s *Server) BufferedBytes() int64 { return s.buffered.Load() }

// Serve serves exports on l until ctx is done, with the default limits.
func Serve(ctx context.Context, l net.Listener, exports ...*Export) error {
	return (&Server{Exports: exports}).Serve(ctx, l)
}

func (s *Server) maxConnections() int { return positive(s.MaxConnections, DefaultMaxConnections) }

func positive[T int | int64 | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// Serve accepts connections on l and serves them until ctx is done (it then
// closes l and every connection and returns ctx's error), l fails, or, with
// StopWhenIdle, the last client has gone (it returns nil).
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	defer l.Close()
	if err := s.validate(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	slots := make(chan struct{}, s.maxConnections())
	var wg sync.WaitGroup
	defer wg.Wait()
	var active atomic.Int64
	idle := make(chan struct{}, 1)
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return s.stopped(ctx, idle)
		}
		conn, err := l.Accept()
		if err != nil {
			<-slots
			if ctx.Err() != nil {
				return s.stopped(ctx, idle)
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		active.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(ctx, conn)
			<-slots
			if active.Add(-1) == 0 && s.StopWhenIdle {
				idle <- struct{}{}
				cancel()
			}
		}()
	}
}

// stopped is Serve's result once ctx is done: nil when it stopped because
// the last client left.
func (s *Server) stopped(ctx context.Context, idle chan struct{}) error {
	select {
	case <-idle:
		return nil
	default:
		return ctx.Err()
	}
}

func (s *Server) validate() error {
	seen := map[string]bool{}
	for _, e := range s.Exports {
		switch {
		case e == nil || e.Image == nil:
			return errors.New("nbd: export without an image")
		case seen[e.Name]:
			return fmt.Errorf("nbd: export %q listed twice", e.Name)
		case len(e.Name) > maxStringLen || len(e.Description) > maxStringLen:
			return fmt.Errorf("nbd: export name or description longer than %d bytes", maxStringLen)
		}
		if e.Writable {
			if _, ok := e.Image.(formats.Writable); !ok {
				return fmt.Errorf("nbd: export %q: %w: format %s cannot be written", e.Name, formats.ErrReadOnly, e.Image.Format())
			}
		}
		if err := e.checkBlockSizes(); err != nil {
			return err
		}
		seen[e.Name] = true
	}
	return nil
}

func (s *Server) export(name string) *Export {
	for _, e := range s.Exports {
		if e.Name == name {
			return e
		}
	}
	return nil
}

func (s *Server) state(c net.Conn, st ConnState) {
	if s.ConnState != nil {
		s.ConnState(c, st)
	}
}

func (s *Server) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
	}
}

// serveConn runs one client from handshake to close.
func (s *Server) serveConn(ctx context.Context, conn net.Conn) {
	s.state(conn, StateNew)
	defer func() {
		conn.Close()
		s.state(conn, StateClosed)
	}()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	sess, err := s.handshake(conn)
	if err != nil {
		if !errors.Is(err, errAborted) {
			s.logf("nbd: %s: handshake: %v", conn.RemoteAddr(), err)
		}
		if sess != nil && sess.conn != conn {
			sess.conn.Close()
		}
		return
	}
	defer sess.conn.Close()
	s.state(conn, StateActive)
	if err := s.transmit(ctx, sess); err != nil && ctx.Err() == nil {
		s.logf("nbd: %s: %v", conn.RemoteAddr(), err)
	}
	// What a client wrote is flushed when it leaves, flush or not (as
	// qemu-nbd does): a driver's Close alone may not persist it.
	if sess.export.Writable {
		if err := sess.export.flush(); err != nil {
			s.logf("nbd: %s: flushing export %q: %v", conn.RemoteAddr(), sess.export.Name, err)
		}
	}
}

// block sizes with defaults applied.
func (e *Export) blockSizes() (minimum, preferred, maxPayload uint32) {
	minimum, preferred, maxPayload = e.MinBlock, e.PreferredBlock, e.MaxPayload
	if minimum == 0 {
		minimum = 1
	}
	if preferred == 0 {
		preferred = 4096
		if cs, ok := e.Image.(formats.ClusterSizer); ok {
			if c := cs.ClusterSize(); c > 4096 && c <= 64<<10 && c&(c-1) == 0 {
				preferred = uint32(c)
			}
		}
		preferred = max(preferred, minimum)
	}
	if maxPayload == 0 {
		maxPayload = max(DefaultMaxPayload, preferred)
	}
	return minimum, preferred, maxPayload
}

// checkBlockSizes enforces proto.md "Size constraints".
func (e *Export) checkBlockSizes() error {
	minimum, preferred, maxPayload := e.blockSizes()
	pow2 := func(v uint32) bool { return v&(v-1) == 0 }
	switch {
	case !pow2(minimum) || minimum > 64<<10:
		return fmt.Errorf("nbd: export %q: minimum block size %d is not a power of two up to 64 KiB", e.Name, minimum)
	case !pow2(preferred) || preferred < max(minimum, 512):
		return fmt.Errorf("nbd: export %q: preferred block size %d is not a power of two of at least max(512, minimum)", e.Name, preferred)
	case maxPayload < preferred || maxPayload > DefaultMaxPayload*4:
		return fmt.Errorf("nbd: export %q: maximum payload %d is below the preferred block size or above %d", e.Name, maxPayload, DefaultMaxPayload*4)
	}
	return nil
}

// transmissionFlags says what the export supports on this session.
func (e *Export) transmissionFlags(structured bool) uint16 {
	flags := uint16(FlagHasFlags | FlagSendFlush)
	if structured {
		flags |= FlagSendDF
	}
	if !e.Writable {
		return flags | FlagReadOnly | FlagCanMultiConn
	}
	flags |= FlagSendFUA | FlagSendWriteZeroes | FlagSendFastZero
	if _, ok := e.Image.(formats.ZeroWriter); ok {
		flags |= FlagSendTrim
	}
	return flags
}
