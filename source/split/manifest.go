package split

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/vdiskio/vdisk/formats"
)

const (
	manifestMagic  = "vdisk split set 1"
	manifestSuffix = ".split"
	// MaxPieces bounds a set (and a manifest's piece lines).
	MaxPieces = 99999
	// maxManifestBytes bounds the manifest read: MaxPieces lines.
	maxManifestBytes = 16 << 20
	sampleBytes      = 4096
)

// manifest is the parsed NAME.split.
type manifest struct {
	size, pieceBytes int64
	pieces           []pieceInfo
}

type pieceInfo struct {
	name        string // base name, in the manifest's directory
	size        int64
	fingerprint string
}

// PieceName is the name of piece index (0-based) of a set named base:
// base.001, base.002, ... base.999, base.1000.
func PieceName(base string, index int) string { return fmt.Sprintf("%s.%03d", base, index+1) }

func (m *manifest) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\nsize %d\npiece-size %d\n", manifestMagic, m.size, m.pieceBytes)
	for _, p := range m.pieces {
		fmt.Fprintf(&b, "piece %s %d %s\n", p.name, p.size, p.fingerprint)
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

// parseManifest reads a manifest named name whose pieces must be called
// base.001, base.002, ... in order.
func parseManifest(r io.Reader, name, base string) (*manifest, error) {
	sc := bufio.NewScanner(io.LimitReader(r, maxManifestBytes))
	sc.Buffer(make([]byte, 1024), 4096)
	m := &manifest{size: -1, pieceBytes: -1}
	line := 0
	bad := func(format string, args ...any) error {
		return &formats.Error{File: name, Structure: fmt.Sprintf("manifest line %d", line), Offset: -1,
			Kind: formats.ErrCorrupt, Msg: fmt.Sprintf(format, args...)}
	}
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		switch {
		case line == 1:
			if sc.Text() != manifestMagic {
				return nil, bad("not a vdisk split manifest (the first line is not %q)", manifestMagic)
			}
		case len(f) == 2 && f[0] == "size" && m.size < 0:
			v, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil || v < 0 {
				return nil, bad("bad size %q", f[1])
			}
			m.size = v
		case len(f) == 2 && f[0] == "piece-size" && m.pieceBytes < 0:
			v, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil || v <= 0 {
				return nil, bad("bad piece size %q", f[1])
			}
			m.pieceBytes = v
		case len(f) == 4 && f[0] == "piece":
			if len(m.pieces) >= MaxPieces {
				return nil, bad("more than %d pieces", MaxPieces)
			}
			want := PieceName(base, len(m.pieces))
			if f[1] != want {
				return nil, bad("piece %q where %q was expected", f[1], want)
			}
			v, err := strconv.ParseInt(f[2], 10, 64)
			if err != nil || v < 0 {
				return nil, bad("bad piece size %q", f[2])
			}
			if _, err := hex.DecodeString(f[3]); err != nil || len(f[3]) != 16 {
				return nil, bad("bad fingerprint %q", f[3])
			}
			m.pieces = append(m.pieces, pieceInfo{name: f[1], size: v, fingerprint: f[3]})
		case len(f) == 0:
		default:
			return nil, bad("unexpected line %q", sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: manifest line %d: %w", name, line+1, err)
	}
	if line == 0 {
		return nil, bad("empty file")
	}
	if m.size < 0 || m.pieceBytes < 0 || len(m.pieces) == 0 {
		return nil, bad("size, piece-size and at least one piece are required")
	}
	var total int64
	for i, p := range m.pieces {
		last := i == len(m.pieces)-1
		if (!last && p.size != m.pieceBytes) || (last && (p.size > m.pieceBytes || (p.size == 0 && i > 0))) {
			return nil, bad("piece %s is %d bytes in a set of %d-byte pieces", p.name, p.size, m.pieceBytes)
		}
		total += p.size
	}
	if total != m.size {
		return nil, bad("the pieces add up to %d bytes, the set is %d", total, m.size)
	}
	return m, nil
}

// fingerprint samples a piece: SHA-256 over its size and its first, middle
// and last 4 KiB, the first 8 bytes in hex.
func fingerprint(r io.ReaderAt, size int64) (string, error) {
	h := sha256.New()
	var sz [8]byte
	binary.LittleEndian.PutUint64(sz[:], uint64(size))
	h.Write(sz[:])
	buf := make([]byte, sampleBytes)
	for _, off := range []int64{0, size/2 - sampleBytes/2, size - sampleBytes} {
		off = max(0, off)
		n := min(int64(sampleBytes), size-off)
		if n <= 0 {
			continue
		}
		if got, err := r.ReadAt(buf[:n], off); int64(got) < n {
			return "", fmt.Errorf("reading at offset %d: %w", off+int64(got), err)
		}
		h.Write(buf[:n])
	}
	return hex.EncodeToString(h.Sum(nil)[:8]), nil
}
