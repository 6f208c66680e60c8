package formats

import (
	"bytes"
	"context"
	"io"
)

// Image is an open virtual disk of Size() bytes.
// ReadAt is safe for concurrent use; reads past Size return io.EOF.
type Image interface {
	io.ReaderAt
	// Size is the virtual disk size in bytes.
	Size() int64
	// Format is the driver name ("raw", "qcow2", "vpc"...).
	Format() string
	// Extents reports the allocation status of [off, off+length) in this layer
	// only (see ChainExtents for the view through backing files). The result
	// covers the range exactly, in increasing order, adjacent extents of equal
	// status merged where cheap. Images that cannot tell report Data.
	Extents(off, length int64) ([]Extent, error)
	Close() error
}

// ExtentKind is the allocation status of a range.
type ExtentKind uint8

const (
	// Data: bytes stored in this layer (they may still be zeros).
	Data ExtentKind = iota
	// Zero: reads as zeros and is recorded so in this layer.
	Zero
	// Unallocated: absent from this layer; reads through to the backing image,
	// or as zeros when there is none.
	Unallocated
)

func (k ExtentKind) String() string {
	switch k {
	case Data:
		return "data"
	case Zero:
		return "zero"
	case Unallocated:
		return "unallocated"
	}
	return "unknown"
}

// Extent is a run of equal allocation status.
type Extent struct {
	Offset int64 // virtual offset
	Length int64
	Kind   ExtentKind
	// HostOffset is where the bytes live in HostFile, or -1 when they have no
	// plain mapping (compressed, unallocated, or the driver cannot tell).
	HostOffset int64
	// HostFile is the file holding the bytes (for map's "File" column); empty
	// means the image's own file.
	HostFile string
	// Compressed is true for ranges stored compressed.
	Compressed bool
	// Depth is the layer that answered: 0 for the image itself, 1 for its
	// backing image, and so on. Drivers leave it 0; ChainExtents sets it.
	Depth int
}

// End is Offset+Length.
func (e Extent) End() int64 { return e.Offset + e.Length }

// Continues reports whether next continues e: contiguous, with equal status,
// layer, compression and file, and contiguous host offsets (or none), so
// that the two can be reported as one extent.
func (e Extent) Continues(next Extent) bool {
	return e.End() == next.Offset && e.Kind == next.Kind && e.Depth == next.Depth &&
		e.Compressed == next.Compressed && e.HostFile == next.HostFile &&
		((e.HostOffset < 0 && next.HostOffset < 0) || (e.HostOffset >= 0 && e.HostOffset+e.Length == next.HostOffset))
}

// Writable is an image that accepts writes. Flush makes every write and the
// metadata describing it durable in the image's files (but does not fsync
// unless the driver needs ordering); Close after Flush leaves a complete image.
type Writable interface {
	Image
	io.WriterAt
	Flush() error
}

// ZeroWriter can record a range as zeros without writing data (qcow2 zero
// clusters, a punched hole, a VDI discarded block). Ranges not aligned to the
// image's granularity are written as explicit zeros by the driver itself.
type ZeroWriter interface {
	WriteZeroes(off, length int64) error
}

// ZeroIniter is implemented by images that can tell whether the ranges a
// new image was never written read as zeros (qemu's has_zero_init). A raw
// LUKS volume cannot: zero bytes on disk decrypt to noise, so a conversion
// into it writes its zeros. Images without the method read as zeros.
type ZeroIniter interface {
	ZeroInit() bool
}

// SequentialWriter is implemented by targets that must be written in
// increasing offset order (streamOptimized VMDK, a fixed VHD going to a pipe).
// Sequential reports whether this open image has that constraint. Skipped
// ranges read as zeros.
type SequentialWriter interface {
	Sequential() bool
}

// ConcurrentWriter is a Writable whose WriteAt and WriteZeroes may be called
// from several goroutines at once on disjoint ranges (raw: positional writes
// into one file, as io.WriterAt allows). ConcurrentWrites reports whether this
// open image allows it. The conversion engine writes to a ConcurrentWriter from
// every worker and serialises its writes to every other target.
type ConcurrentWriter interface {
	ConcurrentWrites() bool
}

// ClusterSizer reports the allocation granularity of an image in bytes.
// The conversion engine aligns chunks and zero detection to it.
type ClusterSizer interface {
	ClusterSize() int64
}

// CompressedWriter is a target that stores compressed clusters. The engine
// calls Compress from many workers at once, one cluster (ClusterSize bytes,
// the last one possibly shorter) at a time, and WriteCompressed in increasing
// offset order from one goroutine.
type CompressedWriter interface {
	ClusterSizer
	// Compress appends the compressed form of cluster to dst. ok is false when
	// it does not shrink; the engine then writes the cluster uncompressed.
	Compress(dst, cluster []byte) (out []byte, ok bool, err error)
	// WriteCompressed places compressed data for the cluster at virtual offset off.
	WriteCompressed(off int64, compressed []byte) error
}

// Backer is an image that reads through to a backing (parent) image.
type Backer interface {
	// Backing is the open backing image, or nil when there is none.
	Backing() Image
	// BackingName is the reference as stored in the image ("" if none).
	BackingName() string
	// BackingPath is the reference resolved to a path ("" if none).
	BackingPath() string
	// BackingFormat is the stored or detected format of the backing image.
	BackingFormat() string
}

// Informer provides what `info` prints beyond size and format.
type Informer interface {
	Info() Info
}

// Info is the format-specific part of `info`. Zero fields are omitted.
type Info struct {
	ClusterSize int64 // "cluster-size"
	DirtyFlag   bool  // "dirty-flag"
	Encrypted   bool  // "encrypted"
	// Details is qemu's "format-specific" "data": the driver's typed
	// Details struct (qcow2.Details, vmdk.Details, ...), whose json tags give
	// qemu's keys in qemu's order (package imageinfo marshals it); nil when
	// the format has none.
	Details any
	// Snapshots lists internal snapshots, for "snapshots".
	Snapshots []Snapshot
	// ActualSize is the bytes allocated on the host for an image made of
	// several files; 0 means the allocation of the image's main file.
	ActualSize int64
}

// Snapshot describes an internal snapshot (qcow2).
type Snapshot struct {
	ID          string
	Name        string
	VMStateSize uint64
	DateSec     int64
	DateNsec    int64
	VMClockNsec uint64
	ICount      uint64
}

// CheckOptions selects what Check repairs.
type CheckOptions struct {
	RepairLeaks bool // -r leaks (and -r all)
	RepairAll   bool // -r all
}

// CheckReport is qemu's ImageCheck. Counters that do not apply stay zero.
// After a repair, Corruptions and Leaks count what remains (qemu's "double
// check" of the fixed image) and the *Fixed fields what was repaired; the
// CLI's exit code follows: CheckErrors → 1, Corruptions → 2, Leaks → 3.
type CheckReport struct {
	CheckErrors        int64
	Corruptions        int64
	Leaks              int64
	CorruptionsFixed   int64
	LeaksFixed         int64
	ImageEndOffset     int64
	TotalClusters      int64
	AllocatedClusters  int64
	FragmentedClusters int64
	CompressedClusters int64
	// HasClusterStats says the cluster counters and image end offset apply
	// (qcow2); other formats report only errors, corruptions and leaks.
	HasClusterStats bool
	// Messages are the per-problem lines qemu prints on stderr
	// ("Leaked cluster 39 refcount=1 reference=0").
	Messages []string
}

// Checker verifies (and with options repairs) an image's metadata.
type Checker interface {
	Check(ctx context.Context, opts CheckOptions) (*CheckReport, error)
}

// Resizer changes an image's virtual size. Shrinking requires shrink=true and
// fails when the cut range is in use and the format cannot drop it.
type Resizer interface {
	Resize(ctx context.Context, newSize int64, shrink bool) error
}

// SizeFinisher is a newly created image that can take a smaller virtual
// size once it has been written: an output created at a provisional size
// (a raw stream's, whose length is known only at its end) into which
// nothing past size (rounded up to the image's block or grain) was
// written. FinishSize rewrites the size fields (headers, footers,
// descriptors) as Create would have written them for size; tables sized
// for the provisional size may keep their room. It is called once, after
// the last write and before Flush and Close. It fails, changing nothing,
// when size is not a whole number of sectors, is larger than the image or
// data lies past it.
type SizeFinisher interface {
	FinishSize(ctx context.Context, size int64) error
}

// DigestVerifier is an image that keeps digests of its own content (EWF's
// MD5 and SHA-1) and can check them: `vdisk verify` without a hash log.
type DigestVerifier interface {
	// VerifyDigests reads the whole image, hashing it with every algorithm
	// it has a stored digest for. Damaged data met on the way (a chunk
	// checksum) is listed in the report's Problems and read as zeros; the
	// error is for what stops the reading (I/O, cancellation).
	VerifyDigests(ctx context.Context, progress func(done, total int64)) (*DigestReport, error)
}

// DigestReport is the result of VerifyDigests.
type DigestReport struct {
	Digests  []DigestCheck
	Problems []string
}

// DigestCheck is one stored digest and the one computed from the content.
type DigestCheck struct {
	Algorithm string // "md5", "sha1", "sha256"
	Stored    []byte
	Computed  []byte
}

// Match reports whether the content has the stored digest.
func (d DigestCheck) Match() bool { return bytes.Equal(d.Stored, d.Computed) }

// OK reports whether every digest matches and no data was damaged.
func (r *DigestReport) OK() bool {
	for _, d := range r.Digests {
		if !d.Match() {
			return false
		}
	}
	return len(r.Problems) == 0 && len(r.Digests) > 0
}
