package checksum

import (
	"context"

	"github.com/vdiskio/vdisk/formats"
)

// Linear returns the plain digests (one per algorithm) of img's guest
// bytes in order: what sha256sum (md5sum...) prints for the raw export.
// Reads run ahead in parallel; zero ranges are hashed without reading.
func Linear(ctx context.Context, img formats.Image, algorithms []string, opts Options) ([]Digest, error) {
	opts = opts.withDefaults()
	h, err := NewHashes(algorithms)
	if err != nil {
		return nil, err
	}
	p := &pipeline{img: img, opts: opts}
	p.process = func(*segment) error { return nil }
	p.commit = func(s *segment) error {
		if s.data {
			h.Write(s.buf)
		} else {
			h.WriteZeros(s.length)
		}
		return nil
	}
	if err := p.run(ctx); err != nil {
		return nil, err
	}
	return h.Sums(), nil
}
