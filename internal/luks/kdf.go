package luks

import (
	"fmt"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/pbkdf2"
)

// KDF types of LUKS2 keyslots (LUKS1 has PBKDF2 only).
const (
	KDFPBKDF2   = "pbkdf2"
	KDFArgon2i  = "argon2i"
	KDFArgon2id = "argon2id"
)

// KDF is a key derivation as a key slot (or a digest) describes it.
type KDF struct {
	Type       string // KDFPBKDF2, KDFArgon2i, KDFArgon2id
	Hash       string // PBKDF2 hash ("sha256")
	Iterations uint32 // PBKDF2 iterations
	Time       uint32 // Argon2 passes
	MemoryKiB  uint32 // Argon2 memory
	CPUs       uint32 // Argon2 lanes
	Salt       []byte
}

// Limits bound the work a header may ask for. The zero value means the
// defaults below; a positive field overrides its default.
type Limits struct {
	// MaxIterations bounds the PBKDF2 iterations of one derivation
	// (default 16,000,000, about 3 s of SHA-256 on a 2025 core; cryptsetup
	// benchmarks to 2 s, so real volumes stay below).
	MaxIterations uint32
	// MaxTotalIterations bounds the PBKDF2 iterations of one unlock over
	// every slot tried and the digest checks (default 48,000,000).
	MaxTotalIterations uint64
	// MaxArgon2MemoryKiB bounds Argon2 memory (default 1 GiB, cryptsetup's
	// default maximum).
	MaxArgon2MemoryKiB uint32
	// MaxArgon2Time bounds Argon2 passes (default 32).
	MaxArgon2Time uint32
	// MaxArgon2CPUs bounds Argon2 lanes (default 16).
	MaxArgon2CPUs uint32
}

// Defaults for Limits.
const (
	DefaultMaxIterations      = 16_000_000
	DefaultMaxTotalIterations = 48_000_000
	DefaultMaxArgon2MemoryKiB = 1 << 20
	DefaultMaxArgon2Time      = 32
	DefaultMaxArgon2CPUs      = 16
)

// WithDefaults returns l with every unset field at its default.
func (l Limits) WithDefaults() Limits {
	if l.MaxIterations == 0 {
		l.MaxIterations = DefaultMaxIterations
	}
	if l.MaxTotalIterations == 0 {
		l.MaxTotalIterations = DefaultMaxTotalIterations
	}
	if l.MaxArgon2MemoryKiB == 0 {
		l.MaxArgon2MemoryKiB = DefaultMaxArgon2MemoryKiB
	}
	if l.MaxArgon2Time == 0 {
		l.MaxArgon2Time = DefaultMaxArgon2Time
	}
	if l.MaxArgon2CPUs == 0 {
		l.MaxArgon2CPUs = DefaultMaxArgon2CPUs
	}
	return l
}

// check validates k's parameters and its cost against l (before any
// derivation runs).
func (k KDF) check(l Limits) error {
	switch k.Type {
	case KDFPBKDF2:
		if _, err := hashFunc(k.Hash); err != nil {
			return err
		}
		if k.Iterations == 0 {
			return fmt.Errorf("pbkdf2 with 0 iterations")
		}
		if k.Iterations > l.MaxIterations {
			return fmt.Errorf("%w: pbkdf2 iterations %d exceed the limit of %d", errLimit, k.Iterations, l.MaxIterations)
		}
	case KDFArgon2i, KDFArgon2id:
		if k.Time == 0 || k.CPUs == 0 || k.MemoryKiB < 8*k.CPUs {
			return fmt.Errorf("%s time %d, memory %d KiB, cpus %d are invalid", k.Type, k.Time, k.MemoryKiB, k.CPUs)
		}
		if k.MemoryKiB > l.MaxArgon2MemoryKiB || k.Time > l.MaxArgon2Time || k.CPUs > l.MaxArgon2CPUs {
			return fmt.Errorf("%w: %s time %d, memory %d KiB, cpus %d exceed the limits (%d, %d KiB, %d)", errLimit,
				k.Type, k.Time, k.MemoryKiB, k.CPUs, l.MaxArgon2Time, l.MaxArgon2MemoryKiB, l.MaxArgon2CPUs)
		}
	default:
		return fmt.Errorf("key derivation %q is not supported", k.Type)
	}
	if len(k.Salt) == 0 || len(k.Salt) > 1024 {
		return fmt.Errorf("%s salt of %d bytes", k.Type, len(k.Salt))
	}
	return nil
}

// derive returns keyLen bytes derived from secret (already checked).
func (k KDF) derive(secret []byte, keyLen int) []byte {
	switch k.Type {
	case KDFArgon2i:
		return argon2.Key(secret, k.Salt, k.Time, k.MemoryKiB, uint8(k.CPUs), uint32(keyLen))
	case KDFArgon2id:
		return argon2.IDKey(secret, k.Salt, k.Time, k.MemoryKiB, uint8(k.CPUs), uint32(keyLen))
	}
	hf, _ := hashFunc(k.Hash)
	return pbkdf2.Key(secret, k.Salt, int(k.Iterations), keyLen, hf)
}
