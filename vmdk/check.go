package vmdk

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/vdiskio/vdisk/formats"
)

// Check verifies every sparse extent: grain tables and grains inside the
// file (as qemu's check does) and, when a redundant grain directory is kept,
// that its tables agree with the primary ones. VMDK has no reference counts,
// so nothing is repaired.
func (img *Image) Check(ctx context.Context, opts formats.CheckOptions) (*formats.CheckReport, error) {
	r := &formats.CheckReport{}
	for _, e := range img.exts {
		if e.sp == nil {
			continue
		}
		if err := e.sp.check(ctx, r, e.start); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (s *sparseExtent) corrupt(r *formats.CheckReport, format string, args ...any) {
	r.Corruptions++
	r.Messages = append(r.Messages, fmt.Sprintf(format, args...))
}

func (s *sparseExtent) check(ctx context.Context, r *formats.CheckReport, start int64) error {
	rgd, err := s.redundantGD()
	if err != nil {
		s.corrupt(r, "ERROR: %s: redundant grain directory: %v", s.name, err)
	}
	for gdi, gtSector := range s.gd {
		if err := ctx.Err(); err != nil {
			return err
		}
		if gtSector == 0 {
			if rgd != nil && rgd[gdi] != 0 {
				s.corrupt(r, "ERROR: %s: redundant grain directory entry %d is set but the primary is not", s.name, gdi)
			}
			continue
		}
		gt, err := s.table(int64(gdi))
		if err != nil {
			r.CheckErrors++
			r.Messages = append(r.Messages, err.Error())
			continue
		}
		for i, gte := range gt {
			g := int64(gdi)*s.gtEntries + int64(i)
			if gte <= zeroedGrainGTE && (gte == 0 || s.zeroed) {
				continue
			}
			host := int64(gte) * sectorSize
			end := host + s.grainBytes
			if s.compressed {
				end = host + grainMarkerSize
			}
			if end > s.fileSize {
				s.corrupt(r, "ERROR: cluster %d offset 0x%x points after end of file", (start/s.grainBytes)+g, host)
			}
		}
		if rgd != nil {
			s.compareRedundant(r, gdi, gt, rgd[gdi])
		}
	}
	return nil
}

// redundantGD reads the redundant grain directory (nil when none is kept).
func (s *sparseExtent) redundantGD() ([]uint32, error) {
	if s.hdr.Flags&flagRedundantGD == 0 || s.hdr.RGDOffset == 0 {
		return nil, nil
	}
	n := int64(len(s.gd))
	off := int64(s.hdr.RGDOffset) * sectorSize
	if s.hdr.RGDOffset > uint64(s.fileSize)/sectorSize || s.fileSize-off < n*gteBytes {
		return nil, formats.Corruptf(s.name, "redundant grain directory", off, "extends past the end of the file")
	}
	raw := make([]byte, n*gteBytes)
	if _, err := s.f.ReadAt(raw, off); err != nil && err != io.EOF {
		return nil, err
	}
	rgd := make([]uint32, n)
	for i := range rgd {
		rgd[i] = binary.LittleEndian.Uint32(raw[i*gteBytes:])
	}
	return rgd, nil
}

// compareRedundant reports a redundant grain table that differs from the
// primary one.
func (s *sparseExtent) compareRedundant(r *formats.CheckReport, gdi int, gt []uint32, rgtSector uint32) {
	off := int64(rgtSector) * sectorSize
	raw := make([]byte, s.gtEntries*gteBytes)
	if rgtSector == 0 || off+int64(len(raw)) > s.fileSize {
		s.corrupt(r, "ERROR: %s: redundant grain table %d missing or past the end of the file", s.name, gdi)
		return
	}
	if _, err := s.f.ReadAt(raw, off); err != nil && err != io.EOF {
		r.CheckErrors++
		return
	}
	for i, e := range gt {
		if binary.LittleEndian.Uint32(raw[i*gteBytes:]) != e {
			s.corrupt(r, "ERROR: %s: redundant grain table %d disagrees with the primary at entry %d", s.name, gdi, i)
			return
		}
	}
}
