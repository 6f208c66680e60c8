package checksum

import (
	"context"
	"io"
	"os"
)

// File returns the digests of a file's bytes (a piece of a split image,
// a raw export) and its length.
func File(ctx context.Context, path string, algorithms []string) ([]Digest, int64, error) {
	h, err := NewHashes(algorithms)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	buf := make([]byte, 4<<20)
	for {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		n, err := io.ReadFull(f, buf)
		h.Write(buf[:n])
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return nil, 0, err
		}
	}
	return h.Sums(), h.Bytes(), nil
}
