package partition

import (
	"fmt"
	"io"

	"github.com/vdiskio/vdisk/formats"
)

// Image is one partition of a disk image, read as an image of its own: byte
// 0 is the partition's first byte, Size its length, Extents the disk's
// allocation inside it. Through a backing chain, each layer is viewed the
// same way, so map and convert -B see the layers.
type Image struct {
	disk formats.Image
	part Partition
	size int64 // the partition's bytes that this layer covers
	owns bool  // Close closes disk
}

// Open reads disk's partition table and returns partition n as an image.
// When owns is true, closing the partition closes disk.
func Open(disk formats.Image, n int, owns bool) (*Image, Partition, error) {
	t, err := Read(disk, disk.Size())
	if err != nil {
		return nil, Partition{}, err
	}
	p, err := t.Find(n)
	if err != nil {
		return nil, Partition{}, err
	}
	return View(disk, p, owns), p, nil
}

// View returns p of disk as an image.
func View(disk formats.Image, p Partition, owns bool) *Image {
	size := min(p.Size, max(0, disk.Size()-p.Start))
	return &Image{disk: disk, part: p, size: size, owns: owns}
}

// Partition is the table entry this image shows.
func (m *Image) Partition() Partition { return m.part }

// Size is the partition's length in bytes.
func (m *Image) Size() int64 { return m.size }

// Format is the disk image's format.
func (m *Image) Format() string { return m.disk.Format() }

// ReadAt reads the partition's bytes; reads past its end return io.EOF.
func (m *Image) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("partition %d: negative offset %d", m.part.Number, off)
	}
	if off >= m.size {
		return 0, io.EOF
	}
	n := len(p)
	short := false
	if int64(n) > m.size-off {
		n, short = int(m.size-off), true
	}
	got, err := m.disk.ReadAt(p[:n], m.part.Start+off)
	if err == nil && short {
		err = io.EOF
	}
	return got, err
}

// Extents reports the disk layer's allocation inside the partition.
func (m *Image) Extents(off, length int64) ([]formats.Extent, error) {
	if off < 0 || length < 0 || off+length > m.size {
		return nil, fmt.Errorf("partition %d: extents %d+%d outside its %d bytes", m.part.Number, off, length, m.size)
	}
	exts, err := m.disk.Extents(m.part.Start+off, length)
	if err != nil {
		return nil, err
	}
	for i := range exts {
		exts[i].Offset -= m.part.Start
	}
	return exts, nil
}

// Close closes the disk image when the view owns it.
func (m *Image) Close() error {
	if m.owns {
		return m.disk.Close()
	}
	return nil
}

// Backing views the same partition of the disk's backing image.
func (m *Image) Backing() formats.Image {
	b, ok := m.disk.(formats.Backer)
	if !ok || b.Backing() == nil {
		return nil
	}
	return View(b.Backing(), m.part, false)
}

func (m *Image) backer() formats.Backer {
	b, _ := m.disk.(formats.Backer)
	return b
}

// BackingName is the disk's stored reference.
func (m *Image) BackingName() string {
	if b := m.backer(); b != nil {
		return b.BackingName()
	}
	return ""
}

// BackingPath is the disk's resolved reference.
func (m *Image) BackingPath() string {
	if b := m.backer(); b != nil {
		return b.BackingPath()
	}
	return ""
}

// BackingFormat is the disk's backing format.
func (m *Image) BackingFormat() string {
	if b := m.backer(); b != nil {
		return b.BackingFormat()
	}
	return ""
}
