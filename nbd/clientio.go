package nbd

import (
	"fmt"
	"io"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/imageio"
)

// maxEffectLength is the longest TRIM, WRITE_ZEROES or BLOCK_STATUS range one
// request covers (the length field has 32 bits).
const maxEffectLength = 1 << 31

// alignDown and alignUp round to the export's minimum block size.
func (c *Client) alignDown(v int64) int64 { return v - v%int64(c.minBlock) }
func (c *Client) alignUp(v int64) int64 {
	return min(c.alignDown(v+int64(c.minBlock)-1), max(c.size, v))
}

// ReadAt reads len(p) bytes at off; reads past the export's end return
// io.EOF with what could be read. Large reads are split into requests of at
// most the server's maximum payload, sent together.
func (c *Client) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%s: read at negative offset %d", c.name, off)
	}
	if off >= c.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), c.size-off))
	var eof error
	if n < len(p) {
		eof = io.EOF
	}
	start, end := c.alignDown(off), c.alignUp(off+int64(n))
	if start == off && end == off+int64(n) {
		if err := c.readAligned(p[:n], off); err != nil {
			return 0, err
		}
		return n, eof
	}
	bounce := make([]byte, end-start)
	if err := c.readAligned(bounce, start); err != nil {
		return 0, err
	}
	copy(p[:n], bounce[off-start:])
	return n, eof
}

// readAligned reads p at off (both aligned to the minimum block).
func (c *Client) readAligned(p []byte, off int64) error { return c.transfer(cmdRead, p, off) }

// writeAligned writes p at off (both aligned to the minimum block).
func (c *Client) writeAligned(p []byte, off int64) error { return c.transfer(cmdWrite, p, off) }

// transfer sends p (a write) or reads into it (a read) at off in requests
// of at most the server's payload, all in flight together, and waits for
// every reply; it returns the first error.
func (c *Client) transfer(typ uint16, p []byte, off int64) error {
	var calls []*call
	var first error
	for done := 0; done < len(p); {
		n := min(len(p)-done, int(c.maxPayload))
		in, out := p[done:done+n], []byte(nil)
		if typ == cmdWrite {
			in, out = nil, in
		}
		cl, err := c.start(request{Type: typ, Offset: uint64(off) + uint64(done), Length: uint32(n)}, in, out)
		if err != nil {
			first = err
			break
		}
		calls = append(calls, cl)
		done += n
	}
	for _, cl := range calls {
		if err := c.wait(cl); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// WriteAt writes p at off (within the export; it cannot grow). Writes not
// aligned to the server's minimum block are read, merged and written back
// (not atomic against a concurrent write to the same block).
func (c *Client) WriteAt(p []byte, off int64) (int, error) {
	if err := c.checkWrite(off, int64(len(p))); err != nil {
		return 0, err
	}
	start, end := c.alignDown(off), c.alignUp(off+int64(len(p)))
	if start != off || end != off+int64(len(p)) {
		buf := make([]byte, end-start)
		if err := c.readAligned(buf, start); err != nil {
			return 0, err
		}
		copy(buf[off-start:], p)
		if err := c.writeAligned(buf, start); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	if err := c.writeAligned(p, off); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (c *Client) checkWrite(off, n int64) error {
	switch {
	case !c.writable:
		return fmt.Errorf("%s: %w", c.name, formats.ErrReadOnly)
	case off < 0 || n < 0 || off > c.size-n:
		return fmt.Errorf("%s: write of %d bytes at %d: beyond the export's %d bytes", c.name, n, off, c.size)
	}
	return nil
}

// do sends one request without payload and waits for its reply.
func (c *Client) do(req request) (*call, error) {
	cl, err := c.start(req, nil, nil)
	if err != nil {
		return nil, err
	}
	return cl, c.wait(cl)
}

// FixedSize is true: an export's size does not change (formats.FixedSizer).
func (c *Client) FixedSize() bool { return true }

// Sync sends NBD_CMD_FLUSH (when the server offers it).
func (c *Client) Sync() error {
	if c.flags&FlagSendFlush == 0 {
		return nil
	}
	_, err := c.do(request{Type: cmdFlush})
	return err
}

// Extents reports the allocation of [off, off+length) from base:allocation
// block status: ranges the server says read as zeros are formats.Zero, the
// rest Data (host offsets are export offsets). Without block status the
// whole range is Data.
func (c *Client) Extents(off, length int64) ([]formats.Extent, error) {
	length = min(length, c.size-off)
	if length <= 0 || off < 0 {
		return nil, nil
	}
	if !c.hasMeta {
		return []formats.Extent{{Offset: off, Length: length, Kind: formats.Data, HostOffset: off}}, nil
	}
	var out []formats.Extent
	end := off + length
	for pos := c.alignDown(off); pos < end; {
		n := min(c.alignUp(end)-pos, maxEffectLength)
		cl, err := c.do(request{Type: cmdBlockStatus, Offset: uint64(pos), Length: uint32(n)})
		if err != nil {
			return nil, err
		}
		next := pos
		for i, d := range cl.exts {
			// Only the last descriptor may extend past the request.
			if d.length == 0 || (next+int64(d.length) > pos+n && i < len(cl.exts)-1) || next >= pos+n {
				return nil, fmt.Errorf("%s: %w: block status descriptor of %d bytes at %d outside the request %d+%d", c.name, ErrProtocol, d.length, next, pos, n)
			}
			d.length = uint32(min(int64(d.length), pos+n-next))
			kind := formats.Data
			if d.flags&stateZero != 0 {
				kind = formats.Zero
			}
			s, e := max(next, off), min(next+int64(d.length), end)
			if s < e {
				out = imageio.AppendExtent(out, formats.Extent{Offset: s, Length: e - s, Kind: kind, HostOffset: s})
			}
			next += int64(d.length)
		}
		pos = next
	}
	return out, nil
}

// FileExtents is Extents under the name formats.FileExtents looks for.
func (c *Client) FileExtents(off, length int64) ([]formats.Extent, error) {
	return c.Extents(off, length)
}

// WriteZeroes makes [off, off+length) read as zeros with NBD_CMD_WRITE_ZEROES
// (the server may punch holes); without it, zeros are written.
func (c *Client) WriteZeroes(off, length int64) error {
	return c.zero(off, length, 0)
}

// ZeroRange is WriteZeroes under the name internal/fileio.RangeZeroer has.
func (c *Client) ZeroRange(off, length int64) error { return c.WriteZeroes(off, length) }

// FastZero zeroes the range only if the server can do it faster than
// writing; otherwise it returns an error wrapping ErrNotSupported and leaves
// the export unchanged.
func (c *Client) FastZero(off, length int64) error {
	if c.flags&FlagSendFastZero == 0 {
		return fmt.Errorf("%s: %w: the server does not offer fast zero", c.name, ErrNotSupported)
	}
	return c.zero(off, length, cmdFlagFastZero)
}

// Trim tells the server the range is no longer needed (NBD_CMD_TRIM); its
// content is then undefined. Without TRIM support it does nothing.
func (c *Client) Trim(off, length int64) error {
	if err := c.checkWrite(off, length); err != nil {
		return err
	}
	if c.flags&FlagSendTrim == 0 {
		return nil
	}
	start, end := c.alignUp(off), c.alignDown(off+length)
	for pos := start; pos < end; {
		n := min(end-pos, maxEffectLength)
		if _, err := c.do(request{Type: cmdTrim, Offset: uint64(pos), Length: uint32(n)}); err != nil {
			return err
		}
		pos += n
	}
	return nil
}

func (c *Client) zero(off, length int64, flags uint16) error {
	if err := c.checkWrite(off, length); err != nil {
		return err
	}
	if c.flags&FlagSendWriteZeroes == 0 {
		return writeZeros(c, off, length)
	}
	// Unaligned edges are written as zero bytes; the aligned middle is zeroed.
	start, end := min(c.alignUp(off), off+length), c.alignDown(off+length)
	if end <= start {
		return writeZeros(c, off, length)
	}
	if start > off {
		if err := writeZeros(c, off, start-off); err != nil {
			return err
		}
	}
	for pos := start; pos < end; {
		n := min(end-pos, maxEffectLength)
		if _, err := c.do(request{Type: cmdWriteZeroes, Flags: flags, Offset: uint64(pos), Length: uint32(n)}); err != nil {
			return err
		}
		pos += n
	}
	if end < off+length {
		return writeZeros(c, end, off+length-end)
	}
	return nil
}

// writeZeros writes zero bytes, 1 MiB at a time.
func writeZeros(c *Client, off, length int64) error {
	zero := make([]byte, min(length, 1<<20))
	for length > 0 {
		n := min(length, int64(len(zero)))
		if _, err := c.WriteAt(zero[:n], off); err != nil {
			return err
		}
		off, length = off+n, length-n
	}
	return nil
}
