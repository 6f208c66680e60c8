package stream

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"sync"

	"github.com/vdiskio/vdisk/formats"
)

// Kind is what Probe finds at the start of a stream.
type Kind int

const (
	// Spool: a format that needs random access (or a compressed stream);
	// the stream must be spooled.
	Spool Kind = iota
	// Raw: no format signature: a raw disk, or a fixed VHD (its footer
	// is at the end).
	Raw
	// StreamOptimized: a streamOptimized VMDK.
	StreamOptimized
)

// HeadBytes is how much of the stream Probe wants to see.
const HeadBytes = formats.ProbeHeaderBytes

// Probe says how the stream starting with head (HeadBytes, or all of a
// shorter stream) can be read. format is the -f format ("" when probed):
// an explicit raw or vpc reads the stream as raw bytes (vpc: with a fixed
// VHD's footer at the end), an explicit vmdk must be a stream, any other
// is spooled.
func Probe(head []byte, format string) Kind {
	switch format {
	case "raw", "vpc", "vhd":
		return Raw
	case "vmdk":
		if isStreamOptimized(head) {
			return StreamOptimized
		}
		return Spool
	case "":
	default:
		return Spool
	}
	if isStreamOptimized(head) {
		return StreamOptimized
	}
	d, err := formats.Detect(formats.ReaderAtFile(bytes.NewReader(head), int64(len(head)), "-"))
	if err != nil || d.Name != "raw" {
		return Spool
	}
	return Raw
}

// Options tune Open.
type Options struct {
	// Name is the stream's name in messages ("-" for stdin).
	Name string
	// Format is the -f format: "" (probed), raw, vpc (vhd) or vmdk.
	Format string
	// LimitBytes bounds a raw stream, and is its provisional size; 0
	// means formats.DefaultMaxVirtualSize.
	LimitBytes int64
	// WindowBytes bounds the decoded bytes held; 0 means DefaultWindowBytes.
	WindowBytes int64
	// MaxVirtualSize bounds a VMDK's capacity; 0 means
	// formats.DefaultMaxVirtualSize.
	MaxVirtualSize int64
}

// Image is a disk image read from a stream, once, in order (see the
// package doc). Its ReadAt is safe for concurrent use within the window.
type Image struct {
	w      *window
	name   string
	size   int64 // the virtual size, or the raw stream's provisional one
	known  bool  // size is the virtual size from the start
	mu     sync.Mutex
	format string
	done   chan struct{} // closed when the producer returns
}

// Open starts reading the stream r (whose first bytes Probe has seen, not
// consumed: r is usually the bufio.Reader that peeked them) as kind says.
func Open(r io.Reader, kind Kind, opts Options) (*Image, error) {
	name := opts.Name
	if name == "" {
		name = "-"
	}
	wb := opts.WindowBytes
	if wb <= 0 {
		wb = DefaultWindowBytes
	}
	maxVirtual := opts.MaxVirtualSize
	if maxVirtual <= 0 {
		maxVirtual = formats.DefaultMaxVirtualSize
	}
	img := &Image{w: newWindow(name, wb), name: name, done: make(chan struct{})}
	switch kind {
	case Raw:
		limit := opts.LimitBytes
		if limit <= 0 {
			limit = maxVirtual
		}
		img.size, img.format = limit, "raw"
		mode := vhdAuto
		switch opts.Format {
		case "raw":
			mode = vhdNever
		case "vpc", "vhd":
			mode, img.format = vhdRequired, "vpc"
		}
		go func() {
			defer close(img.done)
			format, err := produceRaw(img.w, r, mode, limit)
			img.mu.Lock()
			if format != "" {
				img.format = format
			}
			img.mu.Unlock()
			img.w.finish(err)
		}()
	case StreamOptimized:
		in := &countingReader{r: r}
		hdr := make([]byte, sectorBytes)
		if _, err := io.ReadFull(in, hdr); err != nil {
			return nil, formats.Corruptf(name, "VMDK sparse header", 0, "truncated: %v", err)
		}
		h, err := parseVMDKHeader(name, hdr, maxVirtual)
		if err != nil {
			return nil, err
		}
		img.size, img.known, img.format = h.capacityBytes, true, "vmdk"
		p := &vmdkProducer{w: img.w, hdr: h, in: in}
		go func() {
			defer close(img.done)
			img.w.finish(p.run())
		}()
	default:
		return nil, fmt.Errorf("%s: %w: this image needs random access (it is spooled)", name, formats.ErrUnsupported)
	}
	return img, nil
}

// Peek returns a reader of r that has buffered its first HeadBytes, and
// those bytes (fewer when the stream is shorter).
func Peek(r io.Reader) (*bufio.Reader, []byte) {
	br := bufio.NewReaderSize(r, HeadBytes)
	head, _ := br.Peek(HeadBytes)
	return br, head
}

// Size is the virtual size; for a raw stream, until End reports the real
// size, an upper bound (the bytes past the end read as zeros).
func (img *Image) Size() int64 { return img.size }

// SizeKnown says whether Size is the virtual size from the start (a
// VMDK's capacity) rather than a raw stream's provisional bound.
func (img *Image) SizeKnown() bool { return img.known }

// End reports the size of the disk once the stream has ended.
func (img *Image) End() (int64, bool) {
	if img.known {
		return img.size, true
	}
	return img.w.ended()
}

// Wait waits for the stream to be read to its end (the conversion has
// read every byte it needed; what follows, a VMDK's tables and its
// end-of-stream marker, is still checked) and returns the disk's size, or
// the stream's error.
func (img *Image) Wait() (int64, error) {
	<-img.done
	img.w.mu.Lock()
	defer img.w.mu.Unlock()
	if img.w.err != nil {
		return 0, img.w.err
	}
	if img.known {
		return img.size, nil
	}
	return img.w.end, nil
}

// Format is "raw", "vpc" (a fixed VHD's footer ended the stream) or "vmdk".
func (img *Image) Format() string {
	img.mu.Lock()
	defer img.mu.Unlock()
	return img.format
}

// Extents reports everything as data: a stream cannot tell ahead.
func (img *Image) Extents(off, length int64) ([]formats.Extent, error) {
	return []formats.Extent{{Offset: off, Length: length, Kind: formats.Data, HostOffset: -1}}, nil
}

// ReadAt reads the decoded stream; each byte once (see the package doc).
func (img *Image) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%s: negative offset %d", img.name, off)
	}
	if off >= img.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), img.size-off))
	if err := img.w.read(p[:n], off); err != nil {
		return 0, err
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Close stops the stream; a producer blocked on a full window returns.
func (img *Image) Close() error {
	img.w.close()
	return nil
}
