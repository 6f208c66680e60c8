package luks

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"hash"
	"strings"

	"golang.org/x/crypto/xts"
)

// Cipher modes and IV generators of a cipher spec ("xts-plain64",
// "cbc-essiv:sha256").
const (
	ModeXTS = "xts"
	ModeCBC = "cbc"
	ModeCTR = "ctr"
	ModeECB = "ecb"

	IVPlain   = "plain"   // sector number, 32 bits little-endian
	IVPlain64 = "plain64" // sector number, 64 bits little-endian
	IVESSIV   = "essiv"   // sector number encrypted with the hash of the key
)

// Spec is a parsed cipher specification: LUKS1 stores it as cipher_name
// ("aes") and cipher_mode ("xts-plain64"), LUKS2 as one string
// ("aes-xts-plain64").
type Spec struct {
	Cipher string // "aes"
	Mode   string // ModeXTS, ModeCBC, ModeCTR, ModeECB
	IVGen  string // IVPlain, IVPlain64, IVESSIV
	IVHash string // the essiv hash ("sha256"); kept for plain IVs too
}

// ParseSpec parses a LUKS1 cipher name and mode ("aes", "cbc-essiv:sha256").
func ParseSpec(cipherName, cipherMode string) (Spec, error) {
	s := Spec{Cipher: cipherName}
	mode, ivgen, ok := strings.Cut(cipherMode, "-")
	if !ok {
		return s, fmt.Errorf("cipher mode %q is not MODE-IVGEN", cipherMode)
	}
	s.Mode = mode
	s.IVGen, s.IVHash, _ = strings.Cut(ivgen, ":")
	return s, nil
}

// ParseSpec2 parses a LUKS2 encryption string ("aes-xts-plain64").
func ParseSpec2(enc string) (Spec, error) {
	name, mode, ok := strings.Cut(enc, "-")
	if !ok {
		return Spec{}, fmt.Errorf("encryption %q is not CIPHER-MODE-IVGEN", enc)
	}
	return ParseSpec(name, mode)
}

// ModeString is the LUKS1 cipher_mode field: "xts-plain64", "cbc-essiv:sha256".
func (s Spec) ModeString() string {
	m := s.Mode + "-" + s.IVGen
	if s.IVHash != "" {
		m += ":" + s.IVHash
	}
	return m
}

// String is the LUKS2 form, "aes-xts-plain64".
func (s Spec) String() string { return s.Cipher + "-" + s.ModeString() }

// QemuAlg is qemu's cipher-alg name for a key of keyBytes: "aes-256".
func (s Spec) QemuAlg(keyBytes int) string {
	if s.Mode == ModeXTS {
		keyBytes /= 2
	}
	return fmt.Sprintf("%s-%d", s.Cipher, keyBytes*8)
}

// check reports whether vdisk implements s with a key of keyBytes.
func (s Spec) check(keyBytes int) error {
	if s.Cipher != "aes" {
		return fmt.Errorf("cipher %q is not supported (only aes: the Go standard library has no %s)", s.Cipher, s.Cipher)
	}
	cipherKey := keyBytes
	if s.Mode == ModeXTS {
		cipherKey /= 2
	}
	switch s.Mode {
	case ModeXTS, ModeCBC, ModeCTR, ModeECB:
	default:
		return fmt.Errorf("cipher mode %q is not supported", s.Mode)
	}
	if cipherKey != 16 && cipherKey != 24 && cipherKey != 32 || s.Mode == ModeXTS && keyBytes%2 != 0 {
		return fmt.Errorf("%s in %s mode with a %d-byte key is not supported", s.Cipher, s.Mode, keyBytes)
	}
	if s.Mode == ModeECB {
		return nil
	}
	switch s.IVGen {
	case IVPlain, IVPlain64:
	case IVESSIV:
		if s.Mode == ModeXTS {
			return fmt.Errorf("xts with the essiv IV generator is not supported")
		}
		if _, err := hashFunc(s.IVHash); err != nil {
			return fmt.Errorf("essiv: %w", err)
		}
	default:
		return fmt.Errorf("IV generator %q is not supported", s.IVGen)
	}
	return nil
}

// hashFunc returns the hash named as LUKS and qemu name them.
func hashFunc(name string) (func() hash.Hash, error) {
	switch name {
	case "sha1":
		return sha1.New, nil
	case "sha224":
		return sha256.New224, nil
	case "sha256":
		return sha256.New, nil
	case "sha384":
		return sha512.New384, nil
	case "sha512":
		return sha512.New, nil
	}
	return nil, fmt.Errorf("hash %q is not supported", name)
}

// SectorCipher encrypts and decrypts whole sectors in place with a master
// key. It holds expanded key schedules only (the key bytes themselves are
// not kept) and is safe for concurrent use.
type SectorCipher struct {
	spec       Spec
	sectorSize int
	xts        *xts.Cipher
	block      cipher.Block
	essiv      cipher.Block
}

// NewSectorCipher prepares spec with key for sectors of sectorSize bytes.
// The caller may zero key afterwards.
func NewSectorCipher(spec Spec, key []byte, sectorSize int) (*SectorCipher, error) {
	if err := spec.check(len(key)); err != nil {
		return nil, err
	}
	if sectorSize < aes.BlockSize || sectorSize%aes.BlockSize != 0 {
		return nil, fmt.Errorf("sector size %d is not a multiple of the cipher block", sectorSize)
	}
	c := &SectorCipher{spec: spec, sectorSize: sectorSize}
	var err error
	if spec.Mode == ModeXTS {
		c.xts, err = xts.NewCipher(aes.NewCipher, key)
		return c, err
	}
	if c.block, err = aes.NewCipher(key); err != nil {
		return nil, err
	}
	if spec.IVGen == IVESSIV {
		hf, _ := hashFunc(spec.IVHash)
		h := hf()
		h.Write(key)
		salt := h.Sum(nil)
		defer clear(salt)
		// dm-crypt's ESSIV uses the cipher with a key as long as the digest.
		if c.essiv, err = aes.NewCipher(salt); err != nil {
			return nil, fmt.Errorf("essiv:%s needs a %d-byte digest for aes: %w", spec.IVHash, len(salt), err)
		}
	}
	return c, nil
}

// SectorSize is the encryption unit in bytes.
func (c *SectorCipher) SectorSize() int { return c.sectorSize }

// iv fills iv (one cipher block) for sector.
func (c *SectorCipher) iv(iv []byte, sector uint64) {
	clear(iv)
	switch c.spec.IVGen {
	case IVPlain:
		binary.LittleEndian.PutUint32(iv, uint32(sector))
	case IVPlain64:
		binary.LittleEndian.PutUint64(iv, sector)
	case IVESSIV:
		binary.LittleEndian.PutUint64(iv, sector)
		c.essiv.Encrypt(iv, iv)
	}
}

// Encrypt encrypts buf in place: len(buf) is a multiple of the sector
// size and sector is the IV number of its first byte in 512-byte units,
// whatever the sector size (LUKS2 with 4096-byte sectors counts IVs in
// 512-byte units, as cryptsetup maps it: dm-crypt without iv_large_sectors).
func (c *SectorCipher) Encrypt(buf []byte, sector uint64) { c.crypt(buf, sector, true) }

// Decrypt decrypts buf in place (as Encrypt).
func (c *SectorCipher) Decrypt(buf []byte, sector uint64) { c.crypt(buf, sector, false) }

func (c *SectorCipher) crypt(buf []byte, sector uint64, enc bool) {
	var iv [aes.BlockSize]byte
	for len(buf) >= c.sectorSize {
		s := buf[:c.sectorSize]
		switch c.spec.Mode {
		case ModeXTS:
			tweak := sector
			if c.spec.IVGen == IVPlain {
				tweak = uint64(uint32(sector))
			}
			if enc {
				c.xts.Encrypt(s, s, tweak)
			} else {
				c.xts.Decrypt(s, s, tweak)
			}
		case ModeCBC:
			c.iv(iv[:], sector)
			if enc {
				cipher.NewCBCEncrypter(c.block, iv[:]).CryptBlocks(s, s)
			} else {
				cipher.NewCBCDecrypter(c.block, iv[:]).CryptBlocks(s, s)
			}
		case ModeCTR:
			c.iv(iv[:], sector)
			cipher.NewCTR(c.block, iv[:]).XORKeyStream(s, s)
		case ModeECB:
			for i := 0; i < len(s); i += aes.BlockSize {
				if enc {
					c.block.Encrypt(s[i:], s[i:])
				} else {
					c.block.Decrypt(s[i:], s[i:])
				}
			}
		}
		buf = buf[c.sectorSize:]
		sector += uint64(c.sectorSize / 512)
	}
}
