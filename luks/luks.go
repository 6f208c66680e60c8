package luks

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/imageio"
	lukshdr "github.com/vdiskio/vdisk/internal/luks"
)

// Name is the driver name.
const Name = "luks"

func init() {
	formats.Register(&formats.Driver{
		Name:          Name,
		Probe:         probe,
		Open:          imageio.OpenWith(Open),
		Create:        imageio.CreateWith(Create),
		CreateOptions: createOptions,
		Measure:       measure,
	})
}

func probe(in formats.ProbeInput) int {
	if lukshdr.Probe(in.Header) != 0 {
		return formats.ProbeCertain
	}
	return formats.ProbeNone
}

// Image is an open LUKS volume.
type Image struct {
	f        formats.File
	name     string
	vol      *lukshdr.Volume
	cipher   *lukshdr.SectorCipher // nil when opened for metadata only
	size     int64
	sector   int64 // encryption unit
	readOnly bool
	rmw      sync.Mutex // serialises read-modify-write of partial sectors
}

// Open opens f as a LUKS volume; opts.Key unlocks it.
func Open(ctx context.Context, f formats.File, opts formats.OpenOptions) (*Image, error) {
	name := f.Name()
	fileSize, err := f.Size()
	if err != nil {
		return nil, err
	}
	vol, err := lukshdr.Parse(f, fileSize, name)
	if err != nil {
		return nil, err
	}
	img := &Image{f: f, name: name, vol: vol, sector: int64(vol.SectorSize), readOnly: !opts.Writable}
	if vol.PayloadOffset > fileSize {
		return nil, formats.Corruptf(name, fmt.Sprintf("LUKS%d header", vol.Version), -1, "payload offset %d is past the end of the file (%d bytes)", vol.PayloadOffset, fileSize)
	}
	img.size = (fileSize - vol.PayloadOffset) / img.sector * img.sector
	if vol.PayloadSize >= 0 {
		img.size = min(img.size, vol.PayloadSize)
	}
	if err := opts.Limits.CheckVirtualSize(name, img.size); err != nil {
		return nil, err
	}
	if err := vol.Check(); err != nil {
		return nil, err
	}
	if opts.MetadataOnly && len(opts.Key) == 0 {
		return img, nil
	}
	if len(opts.Key) == 0 {
		return nil, &formats.Error{File: name, Offset: -1, Kind: formats.ErrKeyRequired,
			Msg: "the LUKS volume needs its passphrase (key-secret)"}
	}
	img.cipher, err = vol.Unlock(f, opts.Key, lukshdr.LimitsFrom(opts.Limits))
	if err != nil {
		return nil, err
	}
	return img, nil
}

// Size is the payload size in bytes.
func (img *Image) Size() int64 { return img.size }

// Format is "luks".
func (img *Image) Format() string { return Name }

// Extents reports everything as data: holes in the ciphertext say nothing
// about the plaintext (qemu's luks driver does the same).
func (img *Image) Extents(off, length int64) ([]formats.Extent, error) {
	length = min(length, img.size-off)
	if off < 0 || length <= 0 {
		return nil, nil
	}
	return imageio.AllData(off, length), nil
}

// ZeroInit is false: the payload of a new volume decrypts to noise.
func (img *Image) ZeroInit() bool { return false }

// Close closes the file.
func (img *Image) Close() error { return img.f.Close() }

// Flush syncs nothing: every write goes straight to the file.
func (img *Image) Flush() error { return nil }

// Info is qemu's luks block info.
func (img *Image) Info() formats.Info {
	return formats.Info{Encrypted: true, Details: img.vol.Details(false)}
}

// Details are qemu's format-specific information of a LUKS volume
// (QCryptoBlockInfoLUKS): its cipher, hash, key slots and payload offset,
// in qemu's key order.
type Details = lukshdr.Details

// SlotDetails describe one key slot of Details.
type SlotDetails = lukshdr.SlotDetails

// Volume is the parsed LUKS header.
func (img *Image) Volume() *lukshdr.Volume { return img.vol }

func (img *Image) needKey() error {
	if img.cipher == nil {
		return &formats.Error{File: img.name, Offset: -1, Kind: formats.ErrKeyRequired,
			Msg: "opened without its passphrase: its data cannot be read or written"}
	}
	return nil
}

// firstSector is the IV number of payload byte off (sector aligned), in
// 512-byte units plus the LUKS2 iv_tweak.
func (img *Image) firstSector(off int64) uint64 {
	return uint64(off/512) + img.vol.IVTweak
}

// ReadAt decrypts payload bytes; safe for concurrent use.
func (img *Image) ReadAt(p []byte, off int64) (int, error) {
	if err := img.needKey(); err != nil {
		return 0, err
	}
	n, eof := imageio.ClipRead(p, off, img.size)
	if n == 0 {
		return 0, eof
	}
	start := off / img.sector * img.sector
	end := (off + int64(n) + img.sector - 1) / img.sector * img.sector
	buf := p[:n]
	aligned := start == off && end == off+int64(n)
	if !aligned {
		buf = make([]byte, end-start)
	}
	if err := img.readSectors(buf, start); err != nil {
		return 0, err
	}
	if !aligned {
		copy(p[:n], buf[off-start:])
	}
	return n, eof
}

// readSectors reads and decrypts whole sectors at payload offset off.
func (img *Image) readSectors(buf []byte, off int64) error {
	got, err := img.f.ReadAt(buf, img.vol.PayloadOffset+off)
	if got < len(buf) {
		if err != nil && err != io.EOF {
			return fmt.Errorf("%s: reading payload at %d: %w", img.name, off, err)
		}
		clear(buf[got:])
	}
	img.cipher.Decrypt(buf, img.firstSector(off))
	return nil
}

// WriteAt encrypts and writes payload bytes. Whole-sector writes on
// disjoint ranges may run concurrently; partial sectors are merged under a
// lock.
func (img *Image) WriteAt(p []byte, off int64) (int, error) {
	if img.readOnly {
		return 0, fmt.Errorf("%s: %w", img.name, formats.ErrReadOnly)
	}
	if err := img.needKey(); err != nil {
		return 0, err
	}
	if err := imageio.CheckWrite(img.name, len(p), off, img.size); err != nil {
		return 0, err
	}
	start := off / img.sector * img.sector
	end := (off + int64(len(p)) + img.sector - 1) / img.sector * img.sector
	buf := make([]byte, end-start)
	if start != off || end != off+int64(len(p)) {
		img.rmw.Lock()
		defer img.rmw.Unlock()
		if err := img.readSectors(buf[:img.sector], start); err != nil {
			return 0, err
		}
		if len(buf) > int(img.sector) {
			if err := img.readSectors(buf[len(buf)-int(img.sector):], end-img.sector); err != nil {
				return 0, err
			}
		}
	}
	copy(buf[off-start:], p)
	img.cipher.Encrypt(buf, img.firstSector(start))
	if _, err := img.f.WriteAt(buf, img.vol.PayloadOffset+start); err != nil {
		return 0, err
	}
	return len(p), nil
}
