package partition

import (
	"errors"
	"fmt"
	"io"

	"github.com/vdiskio/vdisk/formats"
)

// Scheme is the kind of partition table.
type Scheme string

const (
	SchemeMBR  Scheme = "mbr"
	SchemeGPT  Scheme = "gpt"
	SchemeNone Scheme = "none" // a file system (or nothing known) at offset 0
)

// Limits on what a table may declare.
const (
	maxLogical     = 128     // logical partitions in one extended chain
	maxGPTEntries  = 1024    // entries in a GPT array
	maxGPTArray    = 1 << 20 // bytes in a GPT entry array
	minGPTEntry    = 128     // bytes in one GPT entry (the spec's minimum)
	gptHeaderBytes = 92
)

// Errors wrapped by what Read returns.
var (
	// ErrNotFound: the table has no partition of that number.
	ErrNotFound = errors.New("no such partition")
)

// Partition is one entry of a table.
type Partition struct {
	Number int   // 1-4 primary, 5+ logical (MBR); 1-based entry index (GPT)
	Start  int64 // first byte on the disk
	Size   int64 // bytes
	// Type is the type's name ("Linux filesystem", "EFI System", ...) or,
	// when unknown, the MBR type byte in hex or the GPT type GUID.
	Type     string
	TypeByte byte   // MBR type
	TypeGUID string // GPT type GUID (upper case, canonical form)
	GUID     string // GPT unique partition GUID
	Name     string // GPT partition name
	Bootable bool   // MBR active flag
	Logical  bool   // inside an MBR extended partition
	// Attributes are the GPT attribute bits.
	Attributes uint64
}

// End is Start+Size.
func (p Partition) End() int64 { return p.Start + p.Size }

// Table is a disk's partition table.
type Table struct {
	Scheme     Scheme
	SectorSize int
	DiskGUID   string // GPT disk GUID
	DiskID     uint32 // MBR disk signature (offset 440)
	Partitions []Partition
	// Hybrid is set for a GPT disk whose protective MBR also lists
	// partitions of its own.
	Hybrid bool
	// Warnings name what was repaired in reading: a damaged primary GPT
	// read from the backup, a backup that disagrees, an entry cut short.
	Warnings []string
}

// Find returns partition number n.
func (t *Table) Find(n int) (Partition, error) {
	for _, p := range t.Partitions {
		if p.Number == n {
			return p, nil
		}
	}
	return Partition{}, fmt.Errorf("%w: %d (the disk has %s)", ErrNotFound, n, t.numbers())
}

func (t *Table) numbers() string {
	if len(t.Partitions) == 0 {
		return "no partitions"
	}
	s := "partitions"
	for i, p := range t.Partitions {
		sep := ","
		if i == 0 {
			sep = ""
		}
		s += fmt.Sprintf("%s %d", sep, p.Number)
	}
	return s
}

// Read reads the partition table of a disk of size bytes. A disk with
// neither a valid MBR nor a GPT returns a SchemeNone table without
// partitions (and no error): callers look for a file system at offset 0.
func Read(r io.ReaderAt, size int64) (*Table, error) {
	sector0 := make([]byte, 512)
	if size < 512 {
		return &Table{Scheme: SchemeNone, SectorSize: 512}, nil
	}
	if _, err := r.ReadAt(sector0, 0); err != nil {
		return nil, fmt.Errorf("partition: reading the MBR: %w", err)
	}
	mbr, mbrErr := parseMBR(sector0)
	if mbrErr != nil {
		return &Table{Scheme: SchemeNone, SectorSize: 512}, nil
	}
	if mbr.protective() {
		t, err := readGPT(r, size)
		if err != nil {
			return nil, err
		}
		t.DiskID = mbr.diskID
		t.Hybrid = mbr.hybrid()
		return t, nil
	}
	return readMBR(r, size, mbr)
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: partition table: %s", formats.ErrCorrupt, fmt.Sprintf(format, args...))
}
