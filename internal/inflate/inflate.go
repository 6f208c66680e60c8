package inflate

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/vdiskio/vdisk/internal/rfc1951"
)

// ErrCorrupt is wrapped by every error about the stream's content.
var ErrCorrupt = errors.New("corrupt deflate stream")

// Decoder holds the code tables of one decoding at a time; reusing it
// saves their allocation. The zero value is ready to use. A Decoder is not
// safe for concurrent use.
type Decoder struct {
	litlen  [litlenEnough]uint32
	dist    [distEnough]uint32
	codelen [codelenSize]uint32
	lens    [numLitlen + numDist]uint8

	fixedLitlen [litlenEnough]uint32 // the fixed codes, built on first use
	fixedDist   [distEnough]uint32
	fixedBuilt  bool

	// The bit reader: bitbuf holds nbits unread bits (its bits above them
	// are the next input bytes or zeros); in is the next input byte to
	// load, past the end of src by the zero bytes loaded after it.
	src    []byte
	bitbuf uint64
	nbits  uint
	in     int
}

// maxOverreadBytes is how many zero bytes past the input the bit reader
// may load: a stream that needs more is cut short.
const maxOverreadBytes = 8

// Decode decodes the raw deflate stream at the start of src into dst,
// filling it exactly; the stream is not read past the point where dst is
// full. It fails (ErrCorrupt) when the stream ends, or the input does,
// before dst is full, and on any invalid stream (see the package doc).
func (d *Decoder) Decode(dst, src []byte) error {
	d.src, d.bitbuf, d.nbits, d.in = src, 0, 0, 0
	defer func() { d.src = nil }()
	out := 0
	for out < len(dst) {
		header, err := d.bits(3)
		if err != nil {
			return err
		}
		final := header&1 != 0
		switch header >> 1 {
		case 0:
			out, err = d.stored(dst, out)
		case 1:
			d.fixed()
			out, err = d.huffman(dst, out, &d.fixedLitlen, &d.fixedDist)
		case 2:
			if err = d.dynamic(); err == nil {
				out, err = d.huffman(dst, out, &d.litlen, &d.dist)
			}
		default:
			err = d.corrupt("invalid block type 3")
		}
		if err != nil {
			return err
		}
		if final && out < len(dst) {
			return d.corrupt(fmt.Sprintf("stream ends after %d bytes of %d", out, len(dst)))
		}
	}
	if d.consumed() > 8*int64(len(src)) {
		return d.corrupt("input ends before the output is full")
	}
	return nil
}

// consumed is the number of input bits read so far.
func (d *Decoder) consumed() int64 { return 8*int64(d.in) - int64(d.nbits) }

// corrupt is an ErrCorrupt error at the current input byte.
func (d *Decoder) corrupt(msg string) error {
	pos := d.consumed() / 8
	if pos > int64(len(d.src)) {
		return fmt.Errorf("%w: input ends (%d bytes) before the output is full", ErrCorrupt, len(d.src))
	}
	return fmt.Errorf("%w: %s (input byte %d)", ErrCorrupt, msg, pos)
}

// refill makes at least 56 bits available: one 8-byte load where the input
// has 8 bytes left, else byte by byte, zeros past the end (at most
// maxOverreadBytes of them).
func (d *Decoder) refill() error {
	if d.in+8 <= len(d.src) {
		d.bitbuf |= binary.LittleEndian.Uint64(d.src[d.in:]) << (d.nbits & 63)
		d.in += 7 - int(d.nbits>>3&7)
		d.nbits |= 56
		return nil
	}
	for d.nbits <= 56 {
		if d.in < len(d.src) {
			d.bitbuf |= uint64(d.src[d.in]) << (d.nbits & 63)
		} else if d.in >= len(d.src)+maxOverreadBytes {
			return fmt.Errorf("%w: input ends (%d bytes) before the output is full", ErrCorrupt, len(d.src))
		}
		d.in++
		d.nbits += 8
	}
	return nil
}

// bits reads n (at most 32) bits.
func (d *Decoder) bits(n uint) (uint32, error) {
	if d.nbits < n {
		if err := d.refill(); err != nil {
			return 0, err
		}
	}
	v := uint32(d.bitbuf & (1<<n - 1))
	d.bitbuf >>= n & 63
	d.nbits -= n
	return v, nil
}

// stored copies a stored block's bytes, as many as dst has room for.
func (d *Decoder) stored(dst []byte, out int) (int, error) {
	// Skip to the byte boundary; the whole bytes still in the buffer are
	// given back to the input.
	d.bitbuf >>= d.nbits & 7
	d.nbits &^= 7
	pos := d.in - int(d.nbits/8)
	d.bitbuf, d.nbits, d.in = 0, 0, pos
	if pos+4 > len(d.src) {
		return out, fmt.Errorf("%w: input ends (%d bytes) in a stored block header", ErrCorrupt, len(d.src))
	}
	n := int(binary.LittleEndian.Uint16(d.src[pos:]))
	if ^uint16(n) != binary.LittleEndian.Uint16(d.src[pos+2:]) {
		return out, fmt.Errorf("%w: stored block lengths do not complement (input byte %d)", ErrCorrupt, pos)
	}
	pos += 4
	n = min(n, len(dst)-out)
	if pos+n > len(d.src) {
		return out, fmt.Errorf("%w: input ends (%d bytes) in a stored block of %d bytes", ErrCorrupt, len(d.src), n)
	}
	copy(dst[out:], d.src[pos:pos+n])
	d.in = pos + n
	return out + n, nil
}

// fixed builds the fixed codes of RFC 1951 3.2.6, once.
func (d *Decoder) fixed() {
	if d.fixedBuilt {
		return
	}
	var lens [numLitlen + numDist]uint8
	copy(lens[:numLitlen], rfc1951.FixedLitLenBits[:])
	copy(lens[numLitlen:], rfc1951.FixedDistBits[:])
	build(d.fixedLitlen[:], lens[:numLitlen], litlenBits, litlenMeaning[:], kindLitlen)
	build(d.fixedDist[:], lens[numLitlen:], distBits, distMeaning[:], kindDist)
	d.fixedBuilt = true
}

// codelenOrder is the order of the code-length code lengths.
var codelenOrder = rfc1951.CodeLenOrder

// dynamic reads a dynamic block's codes into d.litlen and d.dist.
func (d *Decoder) dynamic() error {
	h, err := d.bits(14)
	if err != nil {
		return err
	}
	nlen, ndist, ncode := int(h&31)+257, int(h>>5&31)+1, int(h>>10)+4
	if nlen > 286 || ndist > 30 {
		return d.corrupt(fmt.Sprintf("too many length or distance symbols (%d, %d)", nlen, ndist))
	}
	var cl [numCodelen]uint8
	for i := range ncode {
		v, err := d.bits(3)
		if err != nil {
			return err
		}
		cl[codelenOrder[i]] = uint8(v)
	}
	if msg := build(d.codelen[:], cl[:], codelenBits, codelenMeaning[:], kindCodelen); msg != "" {
		return d.corrupt("invalid code-length code: " + msg)
	}
	lens := d.lens[:nlen+ndist]
	for i := 0; i < len(lens); {
		if d.nbits < codelenBits+7 {
			if err := d.refill(); err != nil {
				return err
			}
		}
		e := d.codelen[d.bitbuf&(codelenSize-1)]
		n := uint(e & 15)
		d.bitbuf >>= n & 63
		d.nbits -= n
		sym := e >> 16
		if sym < 16 {
			lens[i] = uint8(sym)
			i++
			continue
		}
		var fill uint8
		var rep int
		switch sym {
		case 16:
			if i == 0 {
				return d.corrupt("repeat of the previous length with none before it")
			}
			fill, rep = lens[i-1], 3+int(d.bitbuf&3)
			d.bitbuf >>= 2
			d.nbits -= 2
		case 17:
			rep = 3 + int(d.bitbuf&7)
			d.bitbuf >>= 3
			d.nbits -= 3
		default:
			rep = 11 + int(d.bitbuf&127)
			d.bitbuf >>= 7
			d.nbits -= 7
		}
		if i+rep > len(lens) {
			return d.corrupt("code length repeat past the last symbol")
		}
		for j := range rep {
			lens[i+j] = fill
		}
		i += rep
	}
	if lens[256] == 0 {
		return d.corrupt("no end-of-block code")
	}
	var ll [numLitlen]uint8
	copy(ll[:], lens[:nlen])
	if msg := build(d.litlen[:], ll[:], litlenBits, litlenMeaning[:], kindLitlen); msg != "" {
		return d.corrupt("invalid literal/length code: " + msg)
	}
	var dl [numDist]uint8
	copy(dl[:], lens[nlen:])
	if msg := build(d.dist[:], dl[:], distBits, distMeaning[:], kindDist); msg != "" {
		return d.corrupt("invalid distance code: " + msg)
	}
	return nil
}
