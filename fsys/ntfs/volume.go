// Package ntfs reads NTFS volumes (as Windows NT 3.1 and later write them,
// and ntfs-3g) as an io/fs file system.
//
// The boot sector gives the sector and cluster size (offsets 0x0B, 0x0D),
// the volume's sectors (0x28), the first cluster of the Master File Table
// (0x30) and the size of an MFT record (0x40: clusters, or 2^-n bytes when
// negative). Everything is a file described by MFT records ("FILE", with an
// update sequence array whose fixups replace the last two bytes of every
// 512-byte stride): record 0 is $MFT itself, 3 $Volume (the label), 5 the
// root directory, 6 $Bitmap (one bit per cluster). A record holds typed
// attributes: $STANDARD_INFORMATION (0x10, times and DOS attributes),
// $ATTRIBUTE_LIST (0x20, when attributes spill into extension records),
// $FILE_NAME (0x30), $DATA (0x80; unnamed for the file's content, named for
// alternate data streams), $INDEX_ROOT/$INDEX_ALLOCATION (0x90/0xA0, a
// directory's B-tree of $FILE_NAME keys in "INDX" records) and
// $REPARSE_POINT (0xC0, symbolic links and junctions). An attribute is
// resident (its value inside the record) or non-resident: a run list of
// (length, relative cluster offset) pairs, a run without offset being sparse.
// A compressed attribute stores each compression unit (16 clusters) either
// whole, as zeros, or LZNT1-compressed in fewer clusters.
//
// Every record number, run, size and count is checked against the volume
// before use; attribute lists and index walks are bounded.
package ntfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf16"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/fsys/fsnode"
)

// Well-known MFT records.
const (
	recordMFT    = 0
	recordVolume = 3
	recordRoot   = 5
	recordBitmap = 6
	firstUser    = 16 // records below are the file system's own
)

// Limits.
const (
	maxRecordBytes = 64 << 10
	maxRuns        = 1 << 20
	maxAttrs       = 4096 // attributes of one file, across extension records
	maxIndexBytes  = 1 << 30
)

// ErrNotNTFS: no NTFS boot sector.
var ErrNotNTFS = errors.New("not an NTFS file system")

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: ntfs: %s", formats.ErrCorrupt, fmt.Sprintf(format, args...))
}

// Volume is an open NTFS file system.
type Volume struct {
	r            io.ReaderAt
	size         int64
	SectorBytes  int64
	ClusterBytes int64
	Clusters     int64
	recordBytes  int64
	indexBytes   int64
	mftRuns      []run // where the MFT's records live
	mftRecords   int64
	Label        string
	*fsnode.FS
}

// Open reads the NTFS volume in r (size bytes).
func Open(r io.ReaderAt, size int64) (*Volume, error) {
	boot := make([]byte, 512)
	if _, err := r.ReadAt(boot, 0); err != nil {
		return nil, fmt.Errorf("ntfs: boot sector: %w", err)
	}
	v, err := parseBoot(boot, size)
	if err != nil {
		return nil, err
	}
	v.r = r
	// Record 0 first from the boot sector's MFT cluster, then the MFT's own
	// run list locates every other record.
	mftLCN := int64(binary.LittleEndian.Uint64(boot[0x30:]))
	if mftLCN <= 0 || mftLCN >= v.Clusters {
		return nil, corrupt("boot sector: MFT at cluster %d of %d", mftLCN, v.Clusters)
	}
	v.mftRuns = []run{{vcn: 0, lcn: mftLCN, length: max(1, v.recordBytes/v.ClusterBytes)}}
	v.mftRecords = 1
	mft, err := v.file(recordMFT)
	if err != nil {
		return nil, fmt.Errorf("ntfs: $MFT: %w", err)
	}
	data := mft.attr(typeData, "")
	if data == nil || !data.nonResident {
		return nil, corrupt("$MFT has no non-resident $DATA")
	}
	v.mftRuns = data.runs
	v.mftRecords = data.dataSize / v.recordBytes
	if vol, err := v.file(recordVolume); err == nil {
		if a := vol.attr(typeVolumeName, ""); a != nil && !a.nonResident {
			v.Label = utf16String(a.value)
		}
	}
	root, err := v.file(recordRoot)
	if err != nil {
		return nil, fmt.Errorf("ntfs: root directory: %w", err)
	}
	root.name = "."
	v.FS = fsnode.New(root)
	return v, nil
}

func parseBoot(b []byte, size int64) (*Volume, error) {
	if string(b[3:11]) != "NTFS    " {
		return nil, ErrNotNTFS
	}
	ss := int64(binary.LittleEndian.Uint16(b[0x0B:]))
	spcRaw := int64(b[0x0D])
	spc := spcRaw
	if spcRaw > 0x80 {
		spc = 1 << (256 - spcRaw)
	}
	if ss < 256 || ss > 4096 || ss&(ss-1) != 0 || spc == 0 || spc > 4096 || spc&(spc-1) != 0 {
		return nil, corrupt("boot sector: %d-byte sectors, %d per cluster", ss, spc)
	}
	v := &Volume{size: size, SectorBytes: ss, ClusterBytes: ss * spc}
	sectors := int64(binary.LittleEndian.Uint64(b[0x28:]))
	if sectors <= 0 || sectors > size/ss+1 {
		return nil, corrupt("boot sector: %d sectors in a %d-byte volume", sectors, size)
	}
	v.Clusters = sectors / spc
	var err error
	if v.recordBytes, err = recordSize(int8(b[0x40]), v.ClusterBytes); err != nil {
		return nil, err
	}
	if v.indexBytes, err = recordSize(int8(b[0x44]), v.ClusterBytes); err != nil {
		return nil, err
	}
	return v, nil
}

// recordSize decodes a clusters-per-record byte: positive counts clusters,
// negative n means 2^-n bytes.
func recordSize(n int8, cluster int64) (int64, error) {
	var b int64
	switch {
	case n > 0:
		b = int64(n) * cluster
	case n < 0 && n > -31:
		b = 1 << uint(-n)
	}
	if b < 512 || b > maxRecordBytes || b&(b-1) != 0 {
		return 0, corrupt("boot sector: record size byte %d (%d bytes)", n, b)
	}
	return b, nil
}

// readRecord reads MFT record num with its fixups applied.
func (v *Volume) readRecord(num int64, magic string, buf []byte) error {
	if num < 0 || num >= max(v.mftRecords, 1) {
		return corrupt("MFT record %d outside 0-%d", num, v.mftRecords-1)
	}
	off := num * v.recordBytes
	if err := readRuns(v, v.mftRuns, buf, off); err != nil {
		return fmt.Errorf("MFT record %d: %w", num, err)
	}
	return fixup(buf, magic, fmt.Sprintf("MFT record %d", num))
}

// fixup checks and applies a record's update sequence array (one entry per
// 512-byte stride, whatever the sector size).
func fixup(b []byte, magic, what string) error {
	if string(b[:4]) != magic {
		return corrupt("%s: magic %q, want %q", what, b[:4], magic)
	}
	usaOff := int(binary.LittleEndian.Uint16(b[4:]))
	usaCount := int(binary.LittleEndian.Uint16(b[6:]))
	stride := 512
	if usaCount < 1 || usaOff+2*usaCount > len(b) || (usaCount-1)*stride > len(b) {
		return corrupt("%s: update sequence array of %d at %d", what, usaCount, usaOff)
	}
	usn := b[usaOff : usaOff+2]
	for i := 1; i < usaCount; i++ {
		end := i*stride - 2
		if b[end] != usn[0] || b[end+1] != usn[1] {
			return corrupt("%s: torn write in sector %d (update sequence mismatch)", what, i-1)
		}
		copy(b[end:end+2], b[usaOff+2*i:usaOff+2*i+2])
	}
	return nil
}

func utf16String(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}

// filetime converts 100-ns intervals since 1601 to a time.
func filetime(ft uint64) time.Time {
	if ft == 0 {
		return time.Time{}
	}
	const epochDiff = 116444736000000000 // 1601 to 1970 in 100 ns
	t := int64(ft) - epochDiff
	return time.Unix(t/1e7, t%1e7*100).UTC()
}

// Bitmap reads $Bitmap: bit n set when cluster n is in use.
func (v *Volume) Bitmap() ([]byte, error) {
	f, err := v.file(recordBitmap)
	if err != nil {
		return nil, err
	}
	a := f.attr(typeData, "")
	if a == nil {
		return nil, corrupt("$Bitmap has no $DATA")
	}
	need := (v.Clusters + 7) / 8
	if a.dataSize < need || a.dataSize > need+8*v.ClusterBytes {
		return nil, corrupt("$Bitmap holds %d bytes for %d clusters", a.dataSize, v.Clusters)
	}
	r, err := f.dataReader(a)
	if err != nil {
		return nil, err
	}
	b := make([]byte, need)
	if _, err := r.ReadAt(b, 0); err != nil && err != io.EOF {
		return nil, err
	}
	return b, nil
}

// FreeSpans lists the byte ranges of the clusters $Bitmap marks free.
func (v *Volume) FreeSpans() ([]fsnode.Span, error) {
	bm, err := v.Bitmap()
	if err != nil {
		return nil, err
	}
	var spans []fsnode.Span
	for c := int64(0); c < v.Clusters; c++ {
		if bm[c/8]&(1<<(c%8)) == 0 {
			spans = fsnode.AddSpan(spans, c*v.ClusterBytes, (c+1)*v.ClusterBytes)
		}
	}
	return spans, nil
}
