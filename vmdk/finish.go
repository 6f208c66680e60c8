package vmdk

import (
	"context"
	"fmt"

	"github.com/vdiskio/vdisk/formats"
)

// checkFinalSize refuses a final size that is not whole sectors up to the
// provisional size.
func checkFinalSize(name string, size, provisional int64) error {
	if size < 0 || size%sectorSize != 0 || size > provisional {
		return fmt.Errorf("%w: %s: final size %d is not a whole number of sectors up to the provisional %d", formats.ErrInvalidOption, name, size, provisional)
	}
	return nil
}

// descriptorArea is the embedded descriptor area (sectors 1-20) holding
// text, zero-padded, or an error when it does not fit.
func descriptorArea(name string, text []byte) ([]byte, error) {
	area := make([]byte, embeddedDescSectors*sectorSize)
	if len(text) > len(area) {
		return nil, fmt.Errorf("%s: descriptor of %d bytes does not fit the embedded area", name, len(text))
	}
	copy(area, text)
	return area, nil
}

// FinishSize gives a new monolithicSparse disk, created at a provisional
// size and written below size only, its final virtual size
// (formats.SizeFinisher): the header's capacity and the embedded
// descriptor's extent line and ddb.geometry.cylinders. Created so
// (formats.CreateRequest.Provisional), its grain tables were allocated
// as they filled, at the end of the file; the tables the final size needs
// and that are still empty are allocated now. The grain directories keep
// the room they were created with (their entries past the size stay 0,
// and qemu and libvmdk read only the entries the capacity needs). Other
// subformats (flat, split, delta disks) are refused.
func (w *writer) FinishSize(ctx context.Context, size int64) error {
	if w.descFor == nil || len(w.exts) != 1 || w.exts[0].sp == nil || w.parent != nil {
		return formats.Unsupportedf(w.name, "finishing the size of this VMDK subformat (new monolithicSparse and streamOptimized disks only)")
	}
	if err := checkFinalSize(w.name, size, w.size); err != nil {
		return err
	}
	area, err := descriptorArea(w.name, w.descFor(size))
	if err != nil {
		return err
	}
	if err := w.exts[0].sp.finishSize(size); err != nil {
		return err
	}
	if _, err := w.main.WriteAt(area, sectorSize); err != nil {
		return fmt.Errorf("%s: writing the descriptor: %w", w.name, err)
	}
	w.size, w.exts[0].length = size, size
	return nil
}

// finishSize sets the extent's capacity to size bytes and rewrites its
// header, unless a grain past size is in use.
func (s *sparseWriter) finishSize(size int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if grains := (size + s.grainBytes - 1) / s.grainBytes; s.grainEnd > grains {
		return formats.Corruptf(s.f.Name(), "grain table", s.gtAt(s.grainEnd/defaultGTEs),
			"grain %d past the final size %d is in use: the size cannot be finished", s.grainEnd-1, size)
	}
	// Every table the final size needs is allocated, as qemu and VMware
	// expect of a hosted sparse extent (qemu writes a grain whose GD entry
	// is 0 over the file's start): the ones not filled are placed at the
	// end of the file, holes that read as empty tables.
	for t := range (size + s.grainBytes*defaultGTEs - 1) / (s.grainBytes * defaultGTEs) {
		if err := s.allocTable(t); err != nil {
			return err
		}
	}
	s.hdr.Capacity, s.capacity = uint64(size/sectorSize), size
	if _, err := s.f.WriteAt(s.hdr.encode(), 0); err != nil {
		return fmt.Errorf("%s: writing the header: %w", s.f.Name(), err)
	}
	return nil
}

// FinishSize gives a new streamOptimized disk written to a file, created
// at a provisional size and written below size only, its final virtual
// size (formats.SizeFinisher): the header's capacity and the descriptor
// are rewritten at the start of the file, and the grain directory, the
// footer and the end-of-stream marker Flush writes are those of the
// final size. Written to a stream (stdout) it cannot go back to its
// header: refused.
func (w *streamWriter) FinishSize(ctx context.Context, size int64) error {
	if formats.IsSequential(w.f) {
		return formats.Unsupportedf(w.name, "a streamOptimized VMDK written to a stream cannot take its size at the end (its header comes first)")
	}
	if err := checkFinalSize(w.name, size, w.size); err != nil {
		return err
	}
	area, err := descriptorArea(w.name, w.descFor(size))
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	grains := (size + w.grainBytes - 1) / w.grainBytes
	numGTs := (grains + defaultGTEs - 1) / defaultGTEs
	past := w.done || w.high > grains*w.grainBytes || w.cur >= grains || w.gtIndex >= numGTs
	for _, e := range w.gd[min(numGTs, int64(len(w.gd))):] {
		past = past || e != 0
	}
	if past {
		return formats.Corruptf(w.name, "grain directory", 0, "grains past the final size %d are written (or the stream is finished): the size cannot be finished", size)
	}
	w.gd, w.hdr.Capacity, w.size = w.gd[:numGTs], uint64(size/sectorSize), size
	head := append(w.hdr.encode(), area...)
	if _, err := w.f.WriteAt(head, 0); err != nil {
		return fmt.Errorf("%s: writing the header: %w", w.name, err)
	}
	return nil
}
