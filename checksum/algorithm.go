package checksum

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha3"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"slices"
	"strings"
	"sync"

	"github.com/vdiskio/vdisk/formats"
)

// DefaultAlgorithm is blksum's default digest.
const DefaultAlgorithm = "sha256"

// algorithms are the digests by their OpenSSL names (the names blksum's -d
// takes and dc3dd's hash= takes).
var algorithms = map[string]func() hash.Hash{
	"md5":        md5.New,
	"sha1":       sha1.New,
	"sha224":     sha256.New224,
	"sha256":     sha256.New,
	"sha384":     sha512.New384,
	"sha512":     sha512.New,
	"sha512-224": sha512.New512_224,
	"sha512-256": sha512.New512_256,
	"sha3-224":   func() hash.Hash { return sha3.New224() },
	"sha3-256":   func() hash.Hash { return sha3.New256() },
	"sha3-384":   func() hash.Hash { return sha3.New384() },
	"sha3-512":   func() hash.Hash { return sha3.New512() },
}

// Algorithms lists the digest names, sorted.
func Algorithms() []string {
	names := make([]string, 0, len(algorithms))
	for n := range algorithms {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// New returns a new hash of the named algorithm.
func New(name string) (hash.Hash, error) {
	mk, ok := algorithms[strings.ToLower(name)]
	if !ok {
		return nil, fmt.Errorf("%w: digest algorithm %q (known: %s)", formats.ErrInvalidOption, name, strings.Join(Algorithms(), ", "))
	}
	return mk(), nil
}

// ParseAlgorithms splits a comma-separated list ("md5,sha256"), refusing
// unknown and repeated names.
func ParseAlgorithms(list string) ([]string, error) {
	var names []string
	for _, n := range strings.Split(list, ",") {
		n = strings.ToLower(strings.TrimSpace(n))
		if n == "" {
			continue
		}
		if _, err := New(n); err != nil {
			return nil, err
		}
		if slices.Contains(names, n) {
			return nil, fmt.Errorf("%w: digest algorithm %q named twice", formats.ErrInvalidOption, n)
		}
		names = append(names, n)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%w: no digest algorithm named", formats.ErrInvalidOption)
	}
	return names, nil
}

// Digest is one algorithm's result.
type Digest struct {
	Algorithm string
	Sum       []byte
}

// Hex is the digest in lower-case hexadecimal.
func (d Digest) Hex() string { return hex.EncodeToString(d.Sum) }

// Hashes computes several digests of one byte stream; it is an io.Writer.
// With more than one algorithm, each Write hashes them in parallel (one
// goroutine each) and returns when all are done, so p may be reused.
type Hashes struct {
	names  []string
	hashes []hash.Hash
	bytes  int64
}

// NewHashes returns Hashes for the named algorithms.
func NewHashes(names []string) (*Hashes, error) {
	h := &Hashes{names: slices.Clone(names)}
	for _, n := range names {
		hh, err := New(n)
		if err != nil {
			return nil, err
		}
		h.hashes = append(h.hashes, hh)
	}
	return h, nil
}

// parallelBytes is the write size from which several algorithms run in
// parallel (below it the goroutine hand-off costs more than it saves).
const parallelBytes = 64 << 10

// Write hashes p with every algorithm. It never fails.
func (h *Hashes) Write(p []byte) (int, error) {
	h.bytes += int64(len(p))
	if len(h.hashes) == 1 || len(p) < parallelBytes {
		for _, hh := range h.hashes {
			hh.Write(p)
		}
		return len(p), nil
	}
	var wg sync.WaitGroup
	for _, hh := range h.hashes[1:] {
		wg.Go(func() { hh.Write(p) })
	}
	h.hashes[0].Write(p)
	wg.Wait()
	return len(p), nil
}

// WriteZeros hashes n zero bytes.
func (h *Hashes) WriteZeros(n int64) {
	for n > 0 {
		k := min(n, int64(len(zeroBlock)))
		h.Write(zeroBlock[:k])
		n -= k
	}
}

// Bytes is the number of bytes hashed.
func (h *Hashes) Bytes() int64 { return h.bytes }

// Sums returns the digests, in the order the algorithms were named.
func (h *Hashes) Sums() []Digest {
	out := make([]Digest, len(h.hashes))
	for i, hh := range h.hashes {
		out[i] = Digest{Algorithm: h.names[i], Sum: hh.Sum(nil)}
	}
	return out
}

// zeroBlock is read, never written.
var zeroBlock [1 << 20]byte

// Names lists the algorithms, in order.
func (h *Hashes) Names() []string { return slices.Clone(h.names) }
