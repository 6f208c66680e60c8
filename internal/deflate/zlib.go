package deflate

import (
	"encoding/binary"
	"hash/adler32"
	"math/bits"
)

// A zlib stream (RFC 1950) wraps a deflate stream: a 2-byte header (CMF:
// method 8 = deflate and log2(window)-8; FLG: a level hint and check bits
// making CMF*256+FLG a multiple of 31), the deflate data, then the Adler-32
// of the uncompressed data, big-endian.

// EncodeZlib appends the zlib stream of src to dst.
func (e *Encoder) EncodeZlib(dst, src []byte) ([]byte, error) {
	cmf := byte(8 | (bits.TrailingZeros(uint(e.window))-8)<<4)
	flg := e.levelHint() << 6
	flg |= byte(31 - (uint(cmf)<<8|uint(flg))%31)
	dst = append(dst, cmf, flg)
	out, err := e.Encode(dst, src)
	if err != nil {
		return dst[:len(dst)-2], err
	}
	return binary.BigEndian.AppendUint32(out, adler32.Checksum(src)), nil
}

// levelHint is FLG.FLEVEL: 0 fastest, 1 fast, 2 default, 3 slowest.
func (e *Encoder) levelHint() byte {
	switch {
	case e.level == 1:
		return 0
	case e.level < DefaultLevel:
		return 1
	case e.level == DefaultLevel:
		return 2
	}
	return 3
}
