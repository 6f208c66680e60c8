package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/blockcache"
	"github.com/vdiskio/vdisk/internal/readonly"
)

// Defaults of Options.
const (
	DefaultChunkBytes   = 1 << 20
	DefaultCacheBytes   = 12 << 20
	DefaultConnections  = 8
	DefaultReadAhead    = 4
	DefaultRetries      = 6
	DefaultBackoff      = 250 * time.Millisecond
	DefaultMaxBackoff   = 8 * time.Second
	DefaultMaxRedirects = 5
)

// Options tune Open; the zero value means the defaults.
type Options struct {
	// Client sends the requests; nil means one with the redirect bound.
	// (A given client's CheckRedirect is replaced.)
	Client *http.Client
	// ChunkBytes is the size of each range request and cache entry.
	ChunkBytes int64
	// CacheBytes bounds the chunks kept.
	CacheBytes int64
	// Connections bounds the requests in flight.
	Connections int
	// ReadAhead is how many chunks past the one read are fetched ahead.
	ReadAhead int
	// Retries is how many attempts in a row that make no progress are
	// retried before the read fails.
	Retries int
	// Backoff is the first wait before a retry; it doubles up to
	// MaxBackoff.
	Backoff, MaxBackoff time.Duration
	// MaxRedirects bounds the redirects of one request.
	MaxRedirects int
	// Header is sent with every request (an Authorization header, say);
	// its values never appear in errors.
	Header http.Header
}

func (o Options) withDefaults() Options {
	if o.ChunkBytes <= 0 {
		o.ChunkBytes = DefaultChunkBytes
	}
	if o.CacheBytes <= 0 {
		o.CacheBytes = DefaultCacheBytes
	}
	if o.Connections <= 0 {
		o.Connections = DefaultConnections
	}
	if o.ReadAhead <= 0 {
		o.ReadAhead = DefaultReadAhead
	}
	if o.Retries <= 0 {
		o.Retries = DefaultRetries
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.MaxRedirects <= 0 {
		o.MaxRedirects = DefaultMaxRedirects
	}
	client := http.Client{}
	if o.Client != nil {
		client = *o.Client
	}
	max := o.MaxRedirects
	client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) > max {
			return fmt.Errorf("more than %d redirects", max)
		}
		return nil
	}
	o.Client = &client
	return o
}

// IsURL reports whether name is a URL this package opens: http://,
// https:// or file://.
func IsURL(name string) bool {
	i := strings.Index(name, "://")
	if i <= 0 {
		return false
	}
	switch strings.ToLower(name[:i]) {
	case "http", "https", "file":
		return true
	}
	return false
}

// IsHTTP reports whether name is an http:// or https:// URL.
func IsHTTP(name string) bool {
	return IsURL(name) && !strings.HasPrefix(strings.ToLower(name), "file:")
}

// Redact returns name with a URL's query, fragment and password replaced
// by "REDACTED", for messages; other names come back unchanged.
func Redact(name string) string {
	if !IsURL(name) {
		return name
	}
	u, err := url.Parse(name)
	if err != nil {
		return "(a URL that does not parse)"
	}
	return redactURL(u)
}

func redactURL(u *url.URL) string {
	c := *u
	if c.RawQuery != "" || c.ForceQuery {
		c.RawQuery, c.ForceQuery = "REDACTED", false
	}
	if c.Fragment != "" {
		c.Fragment, c.RawFragment = "REDACTED", ""
	}
	if c.User != nil {
		if _, ok := c.User.Password(); ok {
			c.User = url.UserPassword(c.User.Username(), "REDACTED")
		}
	}
	return c.String()
}

// FilePath is the local path a file:// URL names.
func FilePath(name string) (string, error) {
	u, err := url.Parse(name)
	if err != nil || !strings.EqualFold(u.Scheme, "file") {
		return "", fmt.Errorf("%w: %q is not a file:// URL", formats.ErrInvalidOption, Redact(name))
	}
	if u.Host != "" && u.Host != "localhost" {
		return "", fmt.Errorf("%w: %s: a file:// URL names a file on this host (file:///path)", formats.ErrUnsupported, Redact(name))
	}
	if u.Path == "" {
		return "", fmt.Errorf("%w: %s: no path", formats.ErrInvalidOption, Redact(name))
	}
	return u.Path, nil
}

// File is an HTTP object read with range requests; safe for concurrent
// use.
type File struct {
	readonly.File // Name (the redacted URL, what is shown), and writes refused
	ctx           context.Context
	cancel        context.CancelFunc
	url           string // as given, query included: what is requested
	size          int64
	opts          Options
	conns         chan struct{}
	chunks        blockcache.Reader // the object's chunks, cached, read ahead
	etag          string
}

// Stream is an HTTP object whose server ignored the Range of the first
// request (200 OK): it can only be read once, in order, through Stream.
// Its ReadAt fails; compressed.Spooler spools it.
type Stream struct {
	readonly.File       // Name (the redacted URL), and writes refused
	size          int64 // -1 when the server did not say
	body          io.ReadCloser
	cancel        context.CancelFunc
}

// Stream returns the body, once: the whole object, in order; its size
// (-1 if unknown) is checked at its end (a short body is an error).
func (s *Stream) Stream() (io.ReadCloser, int64) {
	b := s.body
	s.body = nil
	if b == nil {
		return io.NopCloser(errReader{fmt.Errorf("%s: the stream was read already", s.Name())}), s.size
	}
	return &sizedBody{r: b, name: s.Name(), want: s.size}, s.size
}

func (s *Stream) ReadAt([]byte, int64) (int, error) {
	return 0, fmt.Errorf("%s: %w: the server ignores Range requests; the object can only be read as a stream", s.Name(), formats.ErrUnsupported)
}
func (s *Stream) Size() (int64, error) {
	if s.size < 0 {
		return 0, fmt.Errorf("%s: the server did not say the size", s.Name())
	}
	return s.size, nil
}
func (s *Stream) Close() error {
	defer s.cancel()
	if s.body != nil {
		return s.body.Close()
	}
	return nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// sizedBody checks that a stream ends where Content-Length said.
type sizedBody struct {
	r    io.ReadCloser
	name string
	want int64
	got  int64
}

func (b *sizedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.got += int64(n)
	if err == io.EOF && b.want >= 0 && b.got != b.want {
		return n, fmt.Errorf("%s: %w: the body ended after %d bytes; Content-Length said %d", b.name, formats.ErrCorrupt, b.got, b.want)
	}
	if err != nil && err != io.EOF {
		err = fmt.Errorf("%s: reading the body at offset %d: %v", b.name, b.got, scrub(err))
	}
	return n, err
}

func (b *sizedBody) Close() error { return b.r.Close() }

// Open opens an http:// or https:// URL: a *File when the server honours
// Range, a *Stream when it does not. writable is refused.
func Open(ctx context.Context, rawURL string, writable bool, opts Options) (formats.File, error) {
	name := Redact(rawURL)
	if writable {
		return nil, fmt.Errorf("%s: %w: a URL is opened read-only", name, formats.ErrReadOnly)
	}
	if !IsHTTP(rawURL) {
		return nil, fmt.Errorf("%w: %s is not an http(s) URL", formats.ErrInvalidOption, name)
	}
	if _, err := url.Parse(rawURL); err != nil {
		return nil, fmt.Errorf("%w: %s: the URL does not parse", formats.ErrInvalidOption, name)
	}
	opts = opts.withDefaults()
	fctx, cancel := context.WithCancel(ctx)
	f := &File{File: readonly.New(name, ""), ctx: fctx, cancel: cancel, url: rawURL, opts: opts,
		conns: make(chan struct{}, opts.Connections)}
	f.chunks.Cache.Budget = opts.CacheBytes
	first, stream, err := f.probe()
	if err != nil {
		cancel()
		return nil, err
	}
	if stream != nil {
		// The stream outlives this open; it is cancelled with ctx only.
		return stream, nil
	}
	f.chunks.Size, f.chunks.Count, f.chunks.Ahead = f.size, int((f.size+opts.ChunkBytes-1)/opts.ChunkBytes), opts.ReadAhead
	f.chunks.Find = func(at int64) int { return int(at / opts.ChunkBytes) }
	f.chunks.Span, f.chunks.Load = f.chunkRange, f.fetchChunk
	if f.size > 0 {
		e, _ := f.chunks.Cache.Claim(0, int64(len(first)), false)
		f.chunks.Cache.Publish(0, e, first, nil)
	}
	return f, nil
}

// Size is the object's size.
func (f *File) Size() (int64, error) { return f.size, nil }

// Close stops the requests in flight.
func (f *File) Close() error { f.cancel(); return nil }

// ReadAt reads through the chunk cache.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%s: negative offset %d", f.Name(), off)
	}
	return f.chunks.ReadAt(p, off)
}

// chunkRange is chunk i's offset and length.
func (f *File) chunkRange(i int) (int64, int64) {
	start := int64(i) * f.opts.ChunkBytes
	return start, min(f.opts.ChunkBytes, f.size-start)
}

// fetchChunk requests chunk i.
func (f *File) fetchChunk(i int) ([]byte, error) {
	start, bytes := f.chunkRange(i)
	return f.fetch(start, start+bytes)
}

// probe sends the first request: bytes 0 to the first chunk's end.
func (f *File) probe() ([]byte, *Stream, error) {
	var lastErr error
	for attempt := 0; attempt < f.opts.Retries; attempt++ {
		if attempt > 0 {
			if err := f.wait(attempt); err != nil {
				return nil, nil, err
			}
		}
		resp, err := f.get(0, f.opts.ChunkBytes-1)
		if err != nil {
			lastErr = err
			continue
		}
		switch {
		case resp.StatusCode == http.StatusOK:
			return nil, &Stream{File: f.File, size: resp.ContentLength, body: resp.Body, cancel: f.cancel}, nil
		case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
			resp.Body.Close()
			if _, _, total, err := ParseContentRange(resp.Header.Get("Content-Range")); err == nil && total == 0 {
				f.size = 0
				return nil, nil, nil
			}
			return nil, nil, f.statusError(resp)
		case resp.StatusCode == http.StatusPartialContent:
			start, end, total, err := ParseContentRange(resp.Header.Get("Content-Range"))
			if err != nil || start != 0 || total < 0 || end >= total || end > f.opts.ChunkBytes-1 ||
				(end != min(f.opts.ChunkBytes, total)-1) {
				resp.Body.Close()
				return nil, nil, fmt.Errorf("%s: %w: Content-Range %q does not answer bytes=0-%d", f.Name(), formats.ErrCorrupt,
					resp.Header.Get("Content-Range"), f.opts.ChunkBytes-1)
			}
			f.size, f.etag = total, resp.Header.Get("ETag")
			buf, err := f.readRange(resp, make([]byte, 0, end+1), 0, end+1)
			resp.Body.Close()
			var fatal *fatalError
			if errors.As(err, &fatal) {
				return nil, nil, fatal.err
			}
			data, err := f.fetchInto(buf, 0, end+1) // resumes a broken first body
			return data, nil, err
		case retryable(resp.StatusCode):
			lastErr = f.statusError(resp)
			resp.Body.Close()
		default:
			resp.Body.Close()
			return nil, nil, f.statusError(resp)
		}
	}
	return nil, nil, fmt.Errorf("%s: giving up after %d attempts: %w", f.Name(), f.opts.Retries, lastErr)
}

// fetch reads [start, end) with range requests, resuming a broken transfer
// from the first byte not yet received and retrying failures with
// backoff; attempts that make no progress count against Retries.
func (f *File) fetch(start, end int64) ([]byte, error) {
	return f.fetchInto(make([]byte, 0, end-start), start, end)
}

// fetchInto is fetch with buf holding the first bytes already received.
func (f *File) fetchInto(buf []byte, start, end int64) ([]byte, error) {
	failures := 0
	var lastErr error
	for int64(len(buf)) < end-start {
		if failures >= f.opts.Retries {
			return nil, fmt.Errorf("%s: bytes %d-%d: giving up after %d attempts: %w", f.Name(), start, end-1, failures, lastErr)
		}
		if failures > 0 {
			if err := f.wait(failures); err != nil {
				return nil, err
			}
		}
		before := len(buf)
		var err error
		buf, err = f.fetchOnce(buf, start+int64(len(buf)), end)
		if err == nil {
			continue
		}
		var fatal *fatalError
		if errors.As(err, &fatal) {
			return nil, fatal.err
		}
		if errors.Is(err, context.Canceled) || f.ctx.Err() != nil {
			return nil, f.ctx.Err()
		}
		lastErr = err
		if len(buf) > before {
			failures = 0 // progress: resume without counting
		}
		failures++
	}
	return buf, nil
}

// fatalError is a failure that retrying cannot mend.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }

// fetchOnce sends one range request for [from, end) and appends what the
// body gives to buf.
func (f *File) fetchOnce(buf []byte, from, end int64) ([]byte, error) {
	select {
	case f.conns <- struct{}{}:
	case <-f.ctx.Done():
		return buf, f.ctx.Err()
	}
	defer func() { <-f.conns }()
	resp, err := f.get(from, end-1)
	if err != nil {
		return buf, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusPartialContent:
	case retryable(resp.StatusCode):
		return buf, f.statusError(resp)
	case resp.StatusCode == http.StatusOK:
		return buf, &fatalError{fmt.Errorf("%s: %w: the server answered a range request with the whole object (200) after answering ranges before", f.Name(), formats.ErrCorrupt)}
	default:
		return buf, &fatalError{f.statusError(resp)}
	}
	return f.readRange(resp, buf, from, end)
}

// readRange checks a 206 answer to bytes=from-(end-1) and appends its body
// to buf.
func (f *File) readRange(resp *http.Response, buf []byte, from, end int64) ([]byte, error) {
	cr := resp.Header.Get("Content-Range")
	s, e, total, err := ParseContentRange(cr)
	switch {
	case err != nil:
		return buf, fmt.Errorf("%s: bytes %d-%d: %w", f.Name(), from, end-1, err)
	case total != f.size:
		return buf, &fatalError{fmt.Errorf("%s: %w: the object changed while read: Content-Range %q, the size was %d", f.Name(), formats.ErrCorrupt, cr, f.size)}
	case f.etag != "" && resp.Header.Get("ETag") != "" && resp.Header.Get("ETag") != f.etag:
		return buf, &fatalError{fmt.Errorf("%s: %w: the object changed while read (ETag)", f.Name(), formats.ErrCorrupt)}
	case s != from || e != end-1:
		return buf, fmt.Errorf("%s: Content-Range %q does not answer bytes=%d-%d", f.Name(), cr, from, end-1)
	case resp.ContentLength >= 0 && resp.ContentLength != end-from:
		return buf, fmt.Errorf("%s: Content-Length %d does not match Content-Range %q", f.Name(), resp.ContentLength, cr)
	}
	n, err := io.ReadFull(resp.Body, buf[len(buf):cap(buf)][:end-from])
	buf = buf[:len(buf)+n]
	if err != nil {
		return buf, fmt.Errorf("%s: bytes %d-%d: the body broke after %d bytes: %v", f.Name(), from, end-1, n, scrub(err))
	}
	return buf, nil
}

// get sends GET url with Range: bytes=first-last.
func (f *File) get(first, last int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(f.ctx, http.MethodGet, f.url, nil)
	if err != nil {
		return nil, &fatalError{fmt.Errorf("%s: %w: %v", f.Name(), formats.ErrInvalidOption, scrub(err))}
	}
	for k, v := range f.opts.Header {
		req.Header[k] = v
	}
	req.Header.Set("Range", "bytes="+strconv.FormatInt(first, 10)+"-"+strconv.FormatInt(last, 10))
	resp, err := f.opts.Client.Do(req)
	if err != nil {
		if f.ctx.Err() != nil {
			return nil, f.ctx.Err()
		}
		var ue *url.Error
		if errors.As(err, &ue) && strings.Contains(ue.Err.Error(), "redirects") {
			return nil, &fatalError{fmt.Errorf("%s: %v", f.Name(), scrub(ue.Err))}
		}
		return nil, fmt.Errorf("%s: %v", f.Name(), scrub(err))
	}
	return resp, nil
}

// wait sleeps the backoff before retry attempt (1, 2, ...).
func (f *File) wait(attempt int) error {
	d := f.opts.Backoff << min(attempt-1, 20)
	d = min(d, f.opts.MaxBackoff)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-f.ctx.Done():
		return f.ctx.Err()
	}
}

func retryable(status int) bool {
	return status >= 500 || status == http.StatusTooManyRequests || status == http.StatusRequestTimeout
}

func (f *File) statusError(resp *http.Response) error {
	kind := error(errors.New(resp.Status))
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone {
		kind = fmt.Errorf("%s: %w", resp.Status, fs.ErrNotExist)
	}
	return fmt.Errorf("%s: %w", f.Name(), kind)
}

// scrub removes URLs (which may carry a presigned query) from an error
// of net/http, keeping its cause.
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// ParseContentRange parses an HTTP Content-Range value "bytes S-E/T"
// (RFC 9110 section 14.4), T being "*" (returned as -1) or a length; or
// "bytes */T" (an unsatisfied range: S and E are -1). S <= E < T is
// checked when T is known.
func ParseContentRange(v string) (start, end, total int64, err error) {
	bad := func() (int64, int64, int64, error) {
		return 0, 0, 0, fmt.Errorf("%w: Content-Range %q", formats.ErrCorrupt, truncate(v))
	}
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return bad()
	}
	rng, tot, ok := strings.Cut(rest, "/")
	if !ok {
		return bad()
	}
	total = -1
	if tot != "*" {
		if total, ok = parseNum(tot); !ok {
			return bad()
		}
	}
	if rng == "*" {
		if total < 0 {
			return bad()
		}
		return -1, -1, total, nil
	}
	s, e, ok := strings.Cut(rng, "-")
	if !ok {
		return bad()
	}
	if start, ok = parseNum(s); !ok {
		return bad()
	}
	if end, ok = parseNum(e); !ok || end < start || (total >= 0 && end >= total) {
		return bad()
	}
	return start, end, total, nil
}

// parseNum parses a non-negative decimal of at most 18 digits.
func parseNum(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
