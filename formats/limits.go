package formats

// Limits bounds what an image read from disk may make vdisk do. The zero value
// means the defaults below; a field set to a positive value overrides its default.
type Limits struct {
	// MaxVirtualSize is the largest virtual disk accepted, in bytes.
	// Default DefaultMaxVirtualSize.
	MaxVirtualSize int64
	// MaxChainDepth is how many backing layers below an image may be opened.
	// Default DefaultMaxChainDepth.
	MaxChainDepth int
	// MaxTableBytes bounds any single metadata table loaded whole (L1, BAT,
	// grain directory, block map, refcount table). Default DefaultMaxTableBytes.
	MaxTableBytes int64
	// CacheBytes bounds the per-image cache of second-level tables (L2, grain
	// tables). Default DefaultCacheBytes.
	CacheBytes int64
	// MaxMetadataBytes is the metadata memory budget of one open image, its
	// backing chain and extent files included (see Budget): every table
	// loaded and every cache entry counts against it. Default
	// DefaultMaxMetadataBytes.
	MaxMetadataBytes int64
	// MaxKDFIterations bounds the PBKDF2 iterations an encrypted image's
	// header may ask for in one key derivation (an unlock tries at most
	// three times as many over all its key slots). Default
	// DefaultMaxKDFIterations.
	MaxKDFIterations uint32
	// MaxKDFMemoryKiB bounds the Argon2 memory of a LUKS2 key slot.
	// Default DefaultMaxKDFMemoryKiB.
	MaxKDFMemoryKiB uint32
}

// Defaults for Limits.
const (
	DefaultMaxVirtualSize = 1 << 50 // 1 PiB
	DefaultMaxChainDepth  = 64
	DefaultMaxTableBytes  = 64 << 20
	DefaultCacheBytes     = 8 << 20
	// DefaultMaxMetadataBytes is two whole tables at the table limit: far
	// more than any real image and chain needs (a 64 TiB VHDX's BAT is 16
	// MiB, a 2 TiB VMDK's grain directory 256 KiB; caches give way when it
	// is spent), and small enough that a hostile one stays well inside a
	// 1 GiB address space.
	DefaultMaxMetadataBytes = 128 << 20
	// About 3 s of PBKDF2-SHA256 on one 2025 core; cryptsetup and qemu
	// calibrate to 2 s, so their volumes stay below.
	DefaultMaxKDFIterations = 16_000_000
	DefaultMaxKDFMemoryKiB  = 1 << 20 // 1 GiB, cryptsetup's default maximum
)

// WithDefaults returns l with every unset field at its default.
func (l Limits) WithDefaults() Limits {
	if l.MaxVirtualSize <= 0 {
		l.MaxVirtualSize = DefaultMaxVirtualSize
	}
	if l.MaxChainDepth <= 0 {
		l.MaxChainDepth = DefaultMaxChainDepth
	}
	if l.MaxTableBytes <= 0 {
		l.MaxTableBytes = DefaultMaxTableBytes
	}
	if l.CacheBytes <= 0 {
		l.CacheBytes = DefaultCacheBytes
	}
	if l.MaxMetadataBytes <= 0 {
		l.MaxMetadataBytes = DefaultMaxMetadataBytes
	}
	if l.MaxKDFIterations == 0 {
		l.MaxKDFIterations = DefaultMaxKDFIterations
	}
	if l.MaxKDFMemoryKiB == 0 {
		l.MaxKDFMemoryKiB = DefaultMaxKDFMemoryKiB
	}
	return l
}

// CheckVirtualSize returns an ErrLimit when size is negative or above the limit.
func (l Limits) CheckVirtualSize(file string, size int64) error {
	l = l.WithDefaults()
	if size < 0 || size > l.MaxVirtualSize {
		return Limitf(file, "virtual size", -1, "%d bytes is outside 0..%d", size, l.MaxVirtualSize)
	}
	return nil
}

// CheckTable returns an ErrLimit when a table of count entries of entryBytes
// each would exceed MaxTableBytes (or overflow).
func (l Limits) CheckTable(file, structure string, offset int64, count, entryBytes uint64) error {
	l = l.WithDefaults()
	if entryBytes == 0 || count > uint64(l.MaxTableBytes)/entryBytes {
		return Limitf(file, structure, offset, "%d entries of %d bytes exceed the %d-byte table limit", count, entryBytes, l.MaxTableBytes)
	}
	return nil
}
