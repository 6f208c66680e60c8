package stream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/vdiskio/vdisk/formats"
)

// The VHD footer (VHD specification 2.0), big-endian: the fields a fixed
// disk's footer is recognised by.
const (
	vhdFooterBytes   = 512
	vhdCookie        = "conectix" // 0: cookie
	vhdCurrentSizeAt = 48         // 48: current size (u64)
	vhdDiskTypeAt    = 60         // 60: disk type (u32), 2 = fixed
	vhdChecksumAt    = 64         // 64: one's complement of the byte sum without this field
	vhdDiskFixed     = 2
)

// isFixedVHDFooter says whether b (512 bytes) is the footer of a fixed
// VHD holding exactly dataBytes bytes before it.
func isFixedVHDFooter(b []byte, dataBytes int64) bool {
	if len(b) != vhdFooterBytes || !bytes.Equal(b[:8], []byte(vhdCookie)) {
		return false
	}
	var sum uint32
	for i, c := range b {
		if i < vhdChecksumAt || i >= vhdChecksumAt+4 {
			sum += uint32(c)
		}
	}
	be := binary.BigEndian
	return ^sum == be.Uint32(b[vhdChecksumAt:]) && be.Uint32(b[vhdDiskTypeAt:]) == vhdDiskFixed &&
		be.Uint64(b[vhdCurrentSizeAt:]) == uint64(dataBytes)
}

// rawReadBytes is the unit the raw producer reads stdin in.
const rawReadBytes = 256 << 10

// produceRaw copies r into w, holding back the last 512 bytes: at the end
// they are a fixed VHD's footer (not part of the disk) when they are one
// and vhd allows it, else data. A vhd of vhdRequired makes a missing
// footer an error. It returns the format found ("raw" or "vpc").
func produceRaw(w *window, r io.Reader, vhd vhdMode, limit int64) (string, error) {
	buf := make([]byte, vhdFooterBytes+rawReadBytes)
	held := 0 // bytes at the start of buf not yet written
	var total int64
	for {
		n, err := io.ReadFull(r, buf[held:])
		held += n
		total += int64(n)
		if total > limit+vhdFooterBytes {
			return "", formats.Limitf(w.name, "raw stream", total, "is longer than %d bytes (raise it with --spool-limit)", limit)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("%s: reading the stream at offset %d: %w", w.name, total, err)
		}
		if werr := w.write(buf[:held-vhdFooterBytes]); werr != nil {
			return "", werr
		}
		copy(buf, buf[held-vhdFooterBytes:held])
		held = vhdFooterBytes
	}
	data := total - vhdFooterBytes
	if vhd != vhdNever && held >= vhdFooterBytes && isFixedVHDFooter(buf[held-vhdFooterBytes:held], data) {
		return "vpc", w.write(buf[:held-vhdFooterBytes])
	}
	if vhd == vhdRequired {
		return "", formats.Corruptf(w.name, "VHD footer", max(data, 0), "the stream's last 512 bytes are not the footer of a fixed VHD of %d bytes (a dynamic VHD, or not a VHD)", max(data, 0))
	}
	if total > limit {
		return "", formats.Limitf(w.name, "raw stream", total, "is longer than %d bytes (raise it with --spool-limit)", limit)
	}
	return "raw", w.write(buf[:held])
}

// vhdMode says how the raw producer treats a trailing VHD footer.
type vhdMode int

const (
	vhdAuto     vhdMode = iota // a fixed VHD footer at the end is one (no -f)
	vhdNever                   // -f raw: the last 512 bytes are data
	vhdRequired                // -f vpc: the stream must end with a fixed VHD footer
)
