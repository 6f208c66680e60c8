package qcow2

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/vdiskio/vdisk/formats"
	lukshdr "github.com/vdiskio/vdisk/internal/luks"
)

// Encryption (qcow2.txt "crypt_method" and "Full disk encryption header
// pointer"). With crypt_method 2 (LUKS) a LUKS1 header and its key
// material live in host clusters named by the 0x0537BE77 extension; every
// data cluster is encrypted in 512-byte sectors with the master key, the
// IV being the sector's host offset / 512 (qemu's crypt_physical_offset).
// crypt_method 1 (AES) is qemu's legacy scheme: AES-128-CBC keyed with the
// first 16 bytes of the password, the IV the guest offset / 512; insecure,
// read-only here as in qemu's system emulators. Compressed clusters are
// never encrypted, so qemu refuses compression with encryption, and so
// does vdisk.
const (
	cryptNone = 0
	cryptAES  = 1
	cryptLUKS = 2

	cryptSector     = 512
	maxCryptoHeader = 64 << 20 // a LUKS1 header is ~2 MiB; LUKS2's at most ~24 MiB
)

// cryptoExt is the full disk encryption header pointer extension (16 bytes).
type cryptoExt struct {
	Offset uint64 // 0: host offset of the LUKS header, cluster aligned
	Length uint64 // 8: its length in bytes
}

func (c *cryptoExt) encode() []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b[0:], c.Offset)
	binary.BigEndian.PutUint64(b[8:], c.Length)
	return b
}

func (e *extensions) addCrypto(name string, data []byte, off int64) error {
	if len(data) != 16 {
		return formats.Corruptf(name, "crypto header extension", off, "%d bytes, want 16", len(data))
	}
	e.Crypto = &cryptoExt{Offset: binary.BigEndian.Uint64(data[0:]), Length: binary.BigEndian.Uint64(data[8:])}
	return nil
}

// crypt is the encryption state of an open image.
type crypt struct {
	method uint32
	vol    *lukshdr.Volume       // LUKS only
	header *io.SectionReader     // LUKS: the header clusters
	cipher *lukshdr.SectorCipher // nil: opened for metadata only
	rmw    sync.Mutex            // serialises read-modify-write of partial sectors
}

// openCrypto sets up decryption from opts.Key (before the tables load).
func (img *Image) openCrypto(opts formats.OpenOptions) error {
	h := &img.hdr
	if h.CryptMethod == cryptNone {
		return nil
	}
	c := &crypt{method: h.CryptMethod}
	if img.size%cryptSector != 0 {
		return formats.Corruptf(img.name, "qcow2 header", 24, "encrypted image of %d bytes is not a whole number of sectors", img.size)
	}
	key := opts.Key
	if h.CryptMethod == cryptAES && opts.Writable {
		return fmt.Errorf("%s: %w: qcow2 legacy AES encryption (encrypt.format=aes) is read-only: the scheme is insecure and qemu no longer uses it in its emulators; convert to encrypt.format=luks", img.name, formats.ErrReadOnly)
	}
	if h.CryptMethod == cryptLUKS {
		if err := img.openLUKS(c); err != nil {
			return err
		}
	}
	if len(key) == 0 && !opts.MetadataOnly {
		return &formats.Error{File: img.name, Offset: -1, Kind: formats.ErrKeyRequired,
			Msg: "the encrypted qcow2 image needs its key (encrypt.key-secret)"}
	}
	switch h.CryptMethod {
	case cryptAES:
		if len(key) > 0 {
			var k [16]byte // qemu: the password's first 16 bytes, zero padded
			copy(k[:], key)
			cs, err := lukshdr.NewSectorCipher(lukshdr.Spec{Cipher: "aes", Mode: lukshdr.ModeCBC, IVGen: lukshdr.IVPlain64}, k[:], cryptSector)
			clear(k[:])
			if err != nil {
				return err
			}
			c.cipher = cs
		}
	case cryptLUKS:
		if len(key) > 0 {
			if err := img.unlockLUKS(c, key, opts.Limits); err != nil {
				return err
			}
		}
	}
	img.crypt = c
	return nil
}

// openLUKS parses the LUKS header the crypto extension names.
func (img *Image) openLUKS(c *crypt) error {
	ext := img.ext.Crypto
	if ext == nil {
		return formats.Corruptf(img.name, "qcow2 header", 32, "LUKS encryption without the crypto header extension")
	}
	if ext.Offset%uint64(img.clusterSize) != 0 || ext.Offset == 0 || ext.Length < 592 || ext.Length > maxCryptoHeader ||
		ext.Offset > uint64(img.fileEnd) || ext.Length > uint64(img.fileEnd)-ext.Offset {
		return formats.Corruptf(img.name, "crypto header extension", -1, "LUKS header at %#x (%d bytes) is not cluster aligned, not 592 B..%d MiB or outside the file",
			ext.Offset, ext.Length, maxCryptoHeader>>20)
	}
	r := io.NewSectionReader(img.f, int64(ext.Offset), int64(ext.Length))
	name := fmt.Sprintf("%s (LUKS header at %#x)", img.name, ext.Offset)
	vol, err := lukshdr.Parse(r, int64(ext.Length), name)
	if err != nil {
		return err
	}
	if vol.SectorSize != cryptSector {
		return formats.Unsupportedf(img.name, "LUKS header with %d-byte sectors in a qcow2 image", vol.SectorSize)
	}
	if err := vol.Check(); err != nil {
		return err
	}
	c.vol, c.header = vol, r
	return nil
}

// unlockLUKS finds the master key with key.
func (img *Image) unlockLUKS(c *crypt, key []byte, lim formats.Limits) error {
	name := c.vol.Name
	c.vol.Name = img.name // a wrong key names the image
	cs, err := c.vol.Unlock(c.header, key, lukshdr.LimitsFrom(lim))
	c.vol.Name = name
	c.cipher = cs
	return err
}

func (c *crypt) needKey(name string) error {
	if c.cipher == nil {
		return &formats.Error{File: name, Offset: -1, Kind: formats.ErrKeyRequired,
			Msg: "opened without its key: its data cannot be read or written"}
	}
	return nil
}

// readData reads a data segment at host offset host (virtual offset virt),
// decrypting it when the image is encrypted.
func (img *Image) readData(dst []byte, host, virt int64) error {
	c := img.crypt
	if c == nil {
		return img.readHost(dst, host)
	}
	if err := c.needKey(img.name); err != nil {
		return err
	}
	start := host &^ (cryptSector - 1)
	end := roundUp(host+int64(len(dst)), cryptSector)
	buf := dst
	aligned := start == host && end == host+int64(len(dst))
	if !aligned {
		buf = make([]byte, end-start)
	}
	if err := img.readHost(buf, start); err != nil {
		return err
	}
	sector := start / cryptSector
	if c.method == cryptAES {
		sector = (virt - (host - start)) / cryptSector
	}
	c.cipher.Decrypt(buf, uint64(sector))
	if !aligned {
		copy(dst, buf[host-start:])
	}
	return nil
}

// encryptHost encrypts buf, bound for host offset host (sector aligned).
func (img *Image) encryptHost(buf []byte, host int64) {
	if img.crypt != nil {
		img.crypt.cipher.Encrypt(buf, uint64(host/cryptSector))
	}
}

// writeEncrypted is WriteAt for an encrypted image: the range is widened
// to whole sectors (partial ones read and merged under a lock), mapped
// like a plain write, and each host piece encrypted at its host offset.
func (img *Image) writeEncrypted(p []byte, off int64) (int, error) {
	c := img.crypt
	if c.method == cryptAES {
		return 0, fmt.Errorf("%s: %w: qcow2 legacy AES encryption is read-only", img.name, formats.ErrReadOnly)
	}
	if err := c.needKey(img.name); err != nil {
		return 0, err
	}
	start := off &^ (cryptSector - 1)
	end := roundUp(off+int64(len(p)), cryptSector)
	buf := make([]byte, end-start)
	if start != off || end != off+int64(len(p)) {
		c.rmw.Lock()
		defer c.rmw.Unlock()
		if _, err := img.ReadAt(buf[:cryptSector], start); err != nil {
			return 0, err
		}
		if len(buf) > cryptSector {
			if _, err := img.ReadAt(buf[len(buf)-cryptSector:], end-cryptSector); err != nil {
				return 0, err
			}
		}
	}
	copy(buf[off-start:], p)
	img.mu.Lock()
	err := img.markDirty(start, int64(len(buf)))
	var writes []hostWrite
	var tables []int64
	if err == nil {
		writes, tables, err = img.planWrite(buf, start)
	}
	img.mu.Unlock()
	if err != nil {
		return 0, err
	}
	for _, hw := range writes {
		img.encryptHost(hw.buf, hw.host)
	}
	if err := img.writeData(writes, tables); err != nil {
		return 0, err
	}
	return len(p), nil
}

func errCompressEncrypted(name string) error {
	return fmt.Errorf("%s: %w: Compression and encryption not supported at the same time", name, formats.ErrUnsupported)
}

// encryptInfo is the "encrypt" member of qemu's qcow2 format-specific info.
func (img *Image) encryptInfo() any {
	switch {
	case img.crypt == nil:
		return nil
	case img.crypt.method == cryptAES:
		return &AESDetails{Format: "aes"}
	}
	return img.crypt.vol.Details(true)
}

// AESDetails are the "encrypt" details of an image with qemu's legacy AES
// encryption.
type AESDetails struct {
	Format string `json:"format"` // "aes"
}

// encryptParams reads the encryption create options: nil when the image
// is not encrypted.
func encryptParams(req formats.CreateRequest, o CreateOptions, p params) (*lukshdr.CreateParams, error) {
	format := o.Encrypt.Format
	if o.Encryption {
		format = "aes"
	}
	switch format {
	case "":
		return nil, nil
	case "aes":
		return nil, formats.Unsupportedf(req.Name, "creating qcow2 legacy AES encryption (encrypt.format=aes): the scheme is insecure and read-only in vdisk (qemu refuses it in its emulators); use encrypt.format=luks")
	}
	if p.prealloc != "off" && p.prealloc != "" {
		return nil, formats.Unsupportedf(req.Name, "preallocation=%s with encryption (preallocated clusters would not decrypt to zeros)", p.prealloc)
	}
	cp, err := lukshdr.ParamsFromOptions(req.Name, "encrypt.", o.Encrypt.cipher(), req.Open.Secrets)
	if err != nil {
		return nil, err
	}
	return &cp, nil
}

// setUpEncryption writes a new LUKS header into clusters after the
// metadata of a new image and points the header at it (qemu's layout).
func (img *Image) setUpEncryption(req formats.CreateRequest, o CreateOptions, p params) error {
	cp, err := encryptParams(req, o, p)
	if err != nil || cp == nil {
		return err
	}
	area, vol, cs, err := lukshdr.Create1(req.Name, *cp)
	if err != nil {
		return err
	}
	img.mu.Lock()
	defer img.mu.Unlock()
	clusters := (int64(len(area)) + img.clusterSize - 1) / img.clusterSize
	off, err := img.allocClusters(clusters)
	if err != nil {
		return err
	}
	padded := make([]byte, clusters*img.clusterSize)
	copy(padded, area)
	if _, err := img.f.WriteAt(padded, off); err != nil {
		return err
	}
	img.ext.Crypto = &cryptoExt{Offset: uint64(off), Length: uint64(len(area))}
	img.hdr.CryptMethod = cryptLUKS
	img.w.hdrDirty = true
	img.crypt = &crypt{method: cryptLUKS, vol: vol, cipher: cs}
	return img.writeCluster0(p.backingFile)
}

// encryptHeaderBytes is the room the LUKS header of a new image takes, in
// whole clusters (qemu's measure counts it).
func encryptHeaderBytes(o EncryptOptions, cs int64) (int64, error) {
	if o.Format != "luks" {
		return 0, nil
	}
	p, err := lukshdr.CipherFromOptions("measure", "encrypt.", o.cipher())
	if err != nil {
		return 0, err
	}
	return roundUp(lukshdr.HeaderSize1(p), cs), nil
}

// cipher are the options the LUKS header code takes.
func (o EncryptOptions) cipher() lukshdr.CipherOptions {
	return lukshdr.CipherOptions{KeySecret: o.KeySecret, CipherAlg: o.CipherAlg, CipherMode: o.CipherMode,
		IVGenAlg: o.IVGenAlg, IVGenHashAlg: o.IVGenHashAlg, HashAlg: o.HashAlg, IterTimeMs: o.IterTime}
}
