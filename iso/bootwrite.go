package iso

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// BootOptions make an image bootable through El Torito: a BIOS
// no-emulation boot image and, optionally, a UEFI one (usually a FAT image
// holding EFI/BOOT/BOOTX64.EFI). Paths are inside the source directory.
type BootOptions struct {
	BIOSImage   string // e.g. "isolinux/isolinux.bin"; "" for none
	LoadSectors uint16 // 512-byte sectors the BIOS loads; default 4
	// InfoTable patches the boot info table (PVD block, file block, length,
	// checksum) into bytes 8-63 of the BIOS image, as isolinux requires.
	InfoTable bool
	EFIImage  string // e.g. "boot/efi.img"; "" for none
}

const (
	bootInfoOffset   = 8
	bootInfoBytes    = 56
	bootInfoChecksum = 64 // the checksum covers the file from byte 64
	maxInfoTableFile = 32 << 20
	defaultLoadSects = 4
)

// bootLayout is what the builder knows about the boot images.
type bootLayout struct {
	bios, efi *node
	catalog   uint32 // LBA of the boot catalog
	infoSum   uint32 // checksum for the boot info table
}

// findBootNode finds a regular file by its path in the source tree.
func (b *builder) findBootNode(p string) (*node, error) {
	cur := b.root
	for _, part := range strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/") {
		var next *node
		for _, k := range cur.kids {
			if k.name == part {
				next = k
				break
			}
		}
		if next == nil {
			return nil, fmt.Errorf("boot image %q is not in the source directory", p)
		}
		cur = next
	}
	if !cur.mode.IsRegular() || cur.size == 0 {
		return nil, fmt.Errorf("boot image %q is not a non-empty regular file", p)
	}
	return cur, nil
}

// prepareBoot resolves the boot images and computes the info table sum.
func (b *builder) prepareBoot() error {
	o := b.opts.Boot
	if o == nil || (o.BIOSImage == "" && o.EFIImage == "") {
		return nil
	}
	b.boot = &bootLayout{}
	var err error
	if o.BIOSImage != "" {
		if b.boot.bios, err = b.findBootNode(o.BIOSImage); err != nil {
			return err
		}
		if o.InfoTable {
			if b.boot.infoSum, err = b.infoTableSum(b.boot.bios); err != nil {
				return err
			}
		}
	}
	if o.EFIImage != "" {
		if b.boot.efi, err = b.findBootNode(o.EFIImage); err != nil {
			return err
		}
	}
	return nil
}

// infoTableSum is the 32-bit sum of the boot file's little-endian words
// from byte 64 on.
func (b *builder) infoTableSum(n *node) (uint32, error) {
	if n.size > maxInfoTableFile || n.size < bootInfoChecksum {
		return 0, fmt.Errorf("%s: a boot info table needs a boot file of 64 bytes to %d MiB", b.where(n.src), maxInfoTableFile>>20)
	}
	data, err := fs.ReadFile(b.fsys, n.src)
	if err != nil {
		return 0, err
	}
	if int64(len(data)) != n.size {
		return 0, fmt.Errorf("%s: file changed while the image was prepared", b.where(n.src))
	}
	var sum uint32
	for i := bootInfoChecksum; i < len(data); i += 4 {
		var w [4]byte
		copy(w[:], data[i:])
		sum += binary.LittleEndian.Uint32(w[:])
	}
	return sum, nil
}

// patchInfoTable writes the boot info table into the first chunk of the
// BIOS boot file.
func (b *builder) patchInfoTable(chunk []byte) {
	if len(chunk) < bootInfoOffset+bootInfoBytes {
		return
	}
	t := chunk[bootInfoOffset : bootInfoOffset+bootInfoBytes]
	clear(t)
	le := binary.LittleEndian
	le.PutUint32(t[0:], firstVDOffset/blockBytes)
	le.PutUint32(t[4:], b.boot.bios.lba[0])
	le.PutUint32(t[8:], uint32(b.boot.bios.size))
	le.PutUint32(t[12:], b.boot.infoSum)
}

// bootRecord is the El Torito boot record volume descriptor.
func (b *builder) bootRecord() []byte {
	d := make([]byte, blockBytes)
	d[0] = vdBoot
	copy(d[1:], standardID)
	d[6] = 1
	copy(d[7:], elToritoID)
	binary.LittleEndian.PutUint32(d[71:], b.boot.catalog)
	return d
}

// bootCatalog renders the catalog: validation entry, default entry (BIOS,
// or the UEFI image when there is no BIOS one), then a UEFI section.
func (b *builder) bootCatalog() []byte {
	cat := make([]byte, blockBytes)
	first, efiSection := b.boot.bios, b.boot.efi != nil && b.boot.bios != nil
	platform := byte(0)
	if first == nil {
		first, platform = b.boot.efi, 0xEF
	}
	v := cat[0:catEntryBytes]
	v[0], v[1], v[30], v[31] = catValidation, platform, 0x55, 0xAA
	binary.LittleEndian.PutUint16(v[28:], -validationSum(v))
	b.bootEntry(cat[catEntryBytes:2*catEntryBytes], first)
	if efiSection {
		h := cat[2*catEntryBytes : 3*catEntryBytes]
		h[0], h[1] = catSectionLast, 0xEF
		binary.LittleEndian.PutUint16(h[2:], 1)
		b.bootEntry(cat[3*catEntryBytes:4*catEntryBytes], b.boot.efi)
	}
	return cat
}

func (b *builder) bootEntry(e []byte, n *node) {
	sectors := uint16(min((n.size+511)/512, 0xFFFF))
	if n == b.boot.bios {
		sectors = b.opts.Boot.LoadSectors
		if sectors == 0 {
			sectors = defaultLoadSects
		}
	}
	e[0], e[1] = catBootable, 0 // no emulation
	binary.LittleEndian.PutUint16(e[6:], sectors)
	binary.LittleEndian.PutUint32(e[8:], n.lba[0])
}
