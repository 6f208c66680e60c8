package remote

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vdiskio/vdisk/formats"
)

const secret = "X-Amz-Signature=s3cr3t"

// object is the test's remote bytes: random, so that a misplaced chunk
// shows.
func object(n int) []byte {
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// server serves data under /disk.img, only with the presigned query, the
// way http.ServeContent answers Range; mangle may change the answer.
type server struct {
	data     []byte
	requests atomic.Int64
	mu       sync.Mutex
	ranges   []string // the Range headers received
	mangle   func(n int64, w http.ResponseWriter, r *http.Request) bool
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.requests.Add(1)
	s.mu.Lock()
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	s.mu.Unlock()
	if r.URL.RawQuery != secret {
		http.Error(w, "signature required", http.StatusForbidden)
		return
	}
	if r.URL.Path != "/disk.img" {
		http.NotFound(w, r)
		return
	}
	if s.mangle != nil && s.mangle(n, w, r) {
		return
	}
	http.ServeContent(w, r, "disk.img", time.Time{}, bytes.NewReader(s.data))
}

func start(t *testing.T, s *server) string {
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv.URL + "/disk.img?" + secret
}

// fast are options for tests: small chunks, retries without long waits.
var fast = Options{ChunkBytes: 64 << 10, CacheBytes: 256 << 10, Backoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond}

// readAll reads f in parallel pieces of odd sizes and checks every byte.
func readAll(t *testing.T, f formats.File, want []byte) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	piece := len(want)/8 + 1
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for off := w * piece; off < min(len(want), (w+1)*piece); off += 10007 {
				n := min(10007, len(want)-off)
				got := make([]byte, n)
				if _, err := f.ReadAt(got, int64(off)); err != nil && err != io.EOF {
					errs <- err
					return
				}
				if !bytes.Equal(got, want[off:off+n]) {
					errs <- errors.New("bytes differ at " + strconv.Itoa(off))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func noSecret(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("the presigned query appears in an error: %v", err)
	}
}

// TestRangeReads: a server that honours Range serves every byte through
// parallel range requests; the query is sent and never in Name.
func TestRangeReads(t *testing.T) {
	data := object(1<<20 + 12345)
	s := &server{data: data}
	f, err := Open(context.Background(), start(t, s), false, fast)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, ok := f.(*File); !ok {
		t.Fatalf("opened as %T", f)
	}
	if size, _ := f.Size(); size != int64(len(data)) {
		t.Fatalf("size %d", size)
	}
	if strings.Contains(f.Name(), "s3cr3t") || !strings.HasSuffix(f.Name(), "/disk.img?REDACTED") {
		t.Errorf("name %q", f.Name())
	}
	readAll(t, f, data)
	if _, err := f.WriteAt([]byte{1}, 0); !errors.Is(err, formats.ErrReadOnly) {
		t.Errorf("WriteAt: %v", err)
	}
}

// TestDroppedConnections: a server that breaks every transfer after 20000
// bytes is read to the end by resuming each range where it broke.
func TestDroppedConnections(t *testing.T) {
	data := object(300000)
	s := &server{data: data}
	s.mangle = func(_ int64, w http.ResponseWriter, r *http.Request) bool {
		first, last, ok := parseRangeHeader(r.Header.Get("Range"), int64(len(data)))
		if !ok {
			return false
		}
		w.Header().Set("Content-Range", "bytes "+strconv.FormatInt(first, 10)+"-"+strconv.FormatInt(last, 10)+"/"+strconv.Itoa(len(data)))
		w.Header().Set("Content-Length", strconv.FormatInt(last-first+1, 10))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(data[first:min(last+1, first+20000)])
		if last+1-first > 20000 {
			panic(http.ErrAbortHandler) // drop the connection mid-body
		}
		return true
	}
	f, err := Open(context.Background(), start(t, s), false, fast)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	readAll(t, f, data)
	resumed := 0
	s.mu.Lock()
	for _, r := range s.ranges {
		if first, _, ok := parseRangeHeader(r, int64(len(data))); ok && first%fast.ChunkBytes != 0 {
			resumed++
		}
	}
	s.mu.Unlock()
	if resumed == 0 {
		t.Errorf("no request resumed mid-chunk: %v", s.ranges)
	}
}

// TestTransient5xx: every other request fails with 503; the reads retry
// and succeed. A server that always fails gives up with the status, the
// query redacted.
func TestTransient5xx(t *testing.T) {
	data := object(200000)
	s := &server{data: data}
	s.mangle = func(n int64, w http.ResponseWriter, _ *http.Request) bool {
		if n%2 == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return true
		}
		return false
	}
	f, err := Open(context.Background(), start(t, s), false, fast)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, f, data)
	f.Close()
	always := &server{data: data, mangle: func(int64, http.ResponseWriter, *http.Request) bool { panic(http.ErrAbortHandler) }}
	_, err = Open(context.Background(), start(t, always), false, fast)
	if err == nil || !strings.Contains(err.Error(), "giving up") {
		t.Errorf("a server that always drops: %v", err)
	}
	noSecret(t, err)
}

// TestIgnoresRange: a server answering 200 to a Range request is a
// Stream of the whole object (spooled by the caller).
func TestIgnoresRange(t *testing.T) {
	data := object(100000)
	s := &server{data: data}
	s.mangle = func(_ int64, w http.ResponseWriter, _ *http.Request) bool {
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		w.Write(data)
		return true
	}
	f, err := Open(context.Background(), start(t, s), false, fast)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, ok := f.(*Stream)
	if !ok {
		t.Fatalf("opened as %T", f)
	}
	if _, err := f.ReadAt(make([]byte, 1), 0); !errors.Is(err, formats.ErrUnsupported) {
		t.Errorf("ReadAt of a stream: %v", err)
	}
	body, size := st.Stream()
	got, err := io.ReadAll(body)
	if err != nil || size != int64(len(data)) || !bytes.Equal(got, data) {
		t.Errorf("stream: %v, size %d, equal %v", err, size, bytes.Equal(got, data))
	}
}

// TestLyingServers: a Content-Length that disagrees with Content-Range,
// a Content-Range for another range, an object whose size changes and a
// redirect loop are errors (after retries), never wrong bytes; a missing
// object is fs.ErrNotExist. No error shows the query.
func TestLyingServers(t *testing.T) {
	data := object(200000)
	cases := map[string]func(n int64, w http.ResponseWriter, r *http.Request) bool{
		"content-length": func(n int64, w http.ResponseWriter, r *http.Request) bool {
			if n == 1 {
				return false
			}
			first, last, _ := parseRangeHeader(r.Header.Get("Range"), int64(len(data)))
			w.Header().Set("Content-Range", "bytes "+strconv.FormatInt(first, 10)+"-"+strconv.FormatInt(last, 10)+"/"+strconv.Itoa(len(data)))
			w.Header().Set("Content-Length", strconv.FormatInt(last-first, 10)) // one short
			w.WriteHeader(http.StatusPartialContent)
			w.Write(data[first:last])
			return true
		},
		"other-range": func(n int64, w http.ResponseWriter, r *http.Request) bool {
			if n == 1 {
				return false
			}
			w.Header().Set("Content-Range", "bytes 0-9/"+strconv.Itoa(len(data)))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(data[:10])
			return true
		},
		"size-changes": func(n int64, w http.ResponseWriter, r *http.Request) bool {
			if n == 1 {
				return false
			}
			http.ServeContent(w, r, "disk.img", time.Time{}, bytes.NewReader(data[:150000]))
			return true
		},
	}
	for name, mangle := range cases {
		t.Run(name, func(t *testing.T) {
			s := &server{data: data, mangle: mangle}
			f, err := Open(context.Background(), start(t, s), false, fast)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			_, err = f.ReadAt(make([]byte, 1000), 150000)
			if err == nil {
				t.Fatal("read succeeded")
			}
			noSecret(t, err)
		})
	}
	loop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.String(), http.StatusFound)
	}))
	defer loop.Close()
	_, err := Open(context.Background(), loop.URL+"/x?"+secret, false, fast)
	if err == nil || !strings.Contains(err.Error(), "redirects") {
		t.Errorf("redirect loop: %v", err)
	}
	noSecret(t, err)
	s := &server{data: data}
	url := start(t, s)
	_, err = Open(context.Background(), strings.Replace(url, "disk.img", "gone.img", 1), false, fast)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing object: %v", err)
	}
	noSecret(t, err)
}

// parseRangeHeader parses "bytes=F-L" (the test servers' side).
func parseRangeHeader(v string, size int64) (int64, int64, bool) {
	r, ok := strings.CutPrefix(v, "bytes=")
	a, b, ok2 := strings.Cut(r, "-")
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || !ok2 || err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return first, min(last, size-1), true
}

// TestRedact: queries, fragments and passwords never show.
func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"https://h/p/d.img?X-Amz-Signature=abc&x=1": "https://h/p/d.img?REDACTED",
		"https://u:pw@h/d.img":                      "https://u:REDACTED@h/d.img",
		"http://h/d.img#tok":                        "http://h/d.img#REDACTED",
		"/local/path?x":                             "/local/path?x",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzContentRange: any header value parses to a consistent range or
// fails; never panics.
func FuzzContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-99/100", "bytes */0", "bytes 5-4/10", "bytes 0-9/*", "bytes 1-2", "items 0-1/2", "bytes 99999999999999999999-1/2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		s, e, total, err := ParseContentRange(v)
		if err != nil {
			return
		}
		if s == -1 {
			if e != -1 || total < 0 {
				t.Fatalf("%q: %d-%d/%d", v, s, e, total)
			}
			return
		}
		if s < 0 || e < s || (total >= 0 && e >= total) {
			t.Fatalf("%q: %d-%d/%d", v, s, e, total)
		}
	})
}
