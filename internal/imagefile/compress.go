package imagefile

import (
	"io"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
	"github.com/vdiskio/vdisk/source/compressed"
)

// compressingFile is a sequential File whose bytes are compressed into
// under; Close finishes the compressed stream, then closes under.
type compressingFile struct {
	*fileio.Stream
	zw    *compressed.Writer
	under io.Closer // nil for stdout
}

// NewCompressingFile compresses into w (under, when not nil, is closed
// after the compressed stream ends).
func NewCompressingFile(w io.Writer, under io.Closer, kind compressed.Kind, name string) (*compressingFile, error) {
	zw, err := compressed.NewWriter(w, kind, compressed.WriterOptions{})
	if err != nil {
		return nil, err
	}
	return &compressingFile{Stream: fileio.NewStream(zw, name), zw: zw, under: under}, nil
}

func (c *compressingFile) Close() error {
	err := c.zw.Close()
	if c.under != nil {
		if cerr := c.under.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// compressInto wraps a destination file in a compressor.
func compressInto(f formats.File, kind compressed.Kind, name string) (formats.File, error) {
	c, err := NewCompressingFile(io.NewOffsetWriter(f, 0), f, kind, name)
	if err != nil {
		f.Close()
		return nil, err
	}
	return c, nil
}
