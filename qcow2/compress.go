package qcow2

import (
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/vdiskio/vdisk/internal/deflate"
	"github.com/vdiskio/vdisk/internal/inflate"
)

// deflateWindow is the window qemu inflates compressed clusters with
// (inflateInit2 with windowBits -12): back-references must not reach
// further than 4 KiB, so vdisk compresses with this window too, using its
// own encoder (internal/deflate): at level 6 it matches the size of
// qemu's zlib (deflateInit2 level 6, windowBits -12) in less time.
const deflateWindow = 4096

// codec compresses and decompresses clusters of one image. It pools the
// (expensive) encoder and decoder states; it is safe for concurrent use.
type codec struct {
	typ       uint8 // compressionZlib or compressionZstd
	level     int   // compression_level, 0 for the method's default
	inflaters sync.Pool
	deflaters sync.Pool
	zdec      *zstd.Decoder
	zdecOnce  sync.Once
	zdecErr   error
	zencoder  *zstd.Encoder
	zencOnce  sync.Once
	zencErr   error
	srcs      sync.Pool // *[]byte buffers for compressed input
}

// decompress inflates src into dst, which must be filled exactly (a cluster).
// Trailing input after the cluster is complete is ignored, as qemu does:
// the stored length is only known to 512-byte precision. The bytes of dst's
// capacity past its length are scratch space: the decoders may write there
// (faster copies that overrun a match by a few bytes).
func (c *codec) decompress(dst, src []byte) error {
	if c.typ == compressionZstd {
		return c.unzstd(dst, src)
	}
	d, _ := c.inflaters.Get().(*inflate.Decoder)
	if d == nil {
		d = new(inflate.Decoder)
	}
	defer c.inflaters.Put(d)
	if err := d.Decode(dst, src); err != nil {
		return fmt.Errorf("deflate data: %w", err)
	}
	return nil
}

// unzstd decodes the frames at the start of src straight into dst with
// DecodeAll (no stream machinery, no copy out of a history buffer): frame
// by frame, as qemu's loop does, until dst is full; the last frame must end
// exactly there (qemu fails a cluster whose frame goes on).
func (c *codec) unzstd(dst, src []byte) error {
	d, err := c.zdecoder()
	if err != nil {
		return err
	}
	if len(dst) == 0 {
		return nil
	}
	// zstd's fast sequence copies want a block and 16 bytes of slack past
	// the output; the limit on DecodeAll's output is that capacity.
	out := dst[:0:min(cap(dst), len(dst)+zstdSlackBytes)]
	for len(out) < len(dst) {
		n, err := zstdFrameLen(src)
		if err != nil {
			return fmt.Errorf("zstd data at %d of %d bytes in cluster: %w", len(out), len(dst), err)
		}
		if out, err = d.DecodeAll(src[:n], out); err != nil {
			return fmt.Errorf("zstd data: %w", err)
		}
		src = src[n:]
	}
	if len(out) != len(dst) || &out[0] != &dst[0] {
		return fmt.Errorf("zstd data: %d bytes decoded for a %d-byte cluster", len(out), len(dst))
	}
	return nil
}

// zstdSlackBytes is the room past a cluster's end that lets the zstd
// decoder use its fast copies for a block that might reach that end.
const zstdSlackBytes = zstdMaxBlockBytes + 16

// zdecoder is the image's zstd decoder, made on first use: DecodeAll is safe
// for concurrent use, with up to GOMAXPROCS calls decoding at once.
func (c *codec) zdecoder() (*zstd.Decoder, error) {
	c.zdecOnce.Do(func() {
		c.zdec, c.zdecErr = zstd.NewReader(nil, zstd.WithDecoderConcurrency(runtime.GOMAXPROCS(0)),
			zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxMemory(64<<20), zstd.WithDecodeAllCapLimit(true))
	})
	if c.zdecErr != nil {
		return nil, errors.Join(errors.New("zstd decoder"), c.zdecErr)
	}
	return c.zdec, nil
}

// compress appends the compressed form of cluster to dst; ok is false when
// the result is not smaller than the cluster.
func (c *codec) compress(dst, cluster []byte) ([]byte, bool, error) {
	if c.typ == compressionZstd {
		start := len(dst)
		enc, err := c.encoder()
		if err != nil {
			return dst, false, err
		}
		out := enc.EncodeAll(cluster, dst)
		return out, len(out)-start < len(cluster), nil
	}
	enc, _ := c.deflaters.Get().(*deflate.Encoder)
	if enc == nil {
		var err error
		if enc, err = deflate.NewEncoder(c.deflateLevel(), deflateWindow); err != nil {
			return dst, false, err
		}
	}
	defer c.deflaters.Put(enc)
	// qemu stores a cluster compressed only if it shrinks.
	return enc.EncodeLimit(dst, cluster, len(cluster))
}

func (c *codec) deflateLevel() int {
	if c.level == 0 {
		return deflate.DefaultLevel
	}
	return c.level
}

// zstdLevel maps compression_level to klauspost's zstd levels the way
// zstd's own numbers map (1 fastest, 3 default, 6 and up better).
func (c *codec) zstdLevel() zstd.EncoderLevel {
	if c.level == 0 {
		return zstd.SpeedDefault
	}
	return zstd.EncoderLevelFromZstd(c.level)
}

func (c *codec) encoder() (*zstd.Encoder, error) {
	c.zencOnce.Do(func() {
		c.zencoder, c.zencErr = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
			zstd.WithEncoderLevel(c.zstdLevel()), zstd.WithZeroFrames(true),
			zstd.WithEncoderCRC(false), zstd.WithLowerEncoderMem(true))
	})
	if c.zencErr != nil {
		return nil, errors.Join(errors.New("zstd encoder"), c.zencErr)
	}
	return c.zencoder, nil
}
