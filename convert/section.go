package convert

import (
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/imageio"
)

// Section returns the window [start, start+size) of img as an image of
// size bytes (what `dd skip= count=` copies), its allocation seen through
// img's backing chain so that Copy skips what reads as zeros. Closing the
// section closes img.
func Section(img formats.Image, start, size int64) formats.Image {
	return &section{Image: img, start: start, size: size}
}

type section struct {
	formats.Image
	start, size int64
}

func (s *section) Size() int64 { return s.size }

func (s *section) ReadAt(p []byte, off int64) (int, error) {
	n, eof := imageio.ClipRead(p, off, s.size)
	if n == 0 {
		return 0, eof
	}
	if got, err := s.Image.ReadAt(p[:n], s.start+off); got < n {
		return got, err
	}
	return n, eof
}

func (s *section) Extents(off, length int64) ([]formats.Extent, error) {
	exts, err := formats.ChainExtents(s.Image, s.start+off, min(length, s.size-off))
	for i := range exts {
		exts[i].Offset -= s.start
	}
	return exts, err
}
