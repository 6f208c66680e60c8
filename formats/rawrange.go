package formats

import "os"

// RawRanger is an image that stores parts of its virtual disk verbatim in
// a File at a fixed shift: a raw image, a flat VMDK extent, a fixed VHD.
// Copy offload (convert -C) moves such ranges from file to file inside the
// kernel (copy_file_range, reflinks) instead of through user space.
type RawRanger interface {
	// RawRange reports the File that stores virtual offset off verbatim,
	// the offset of off in that file, and how many bytes from off on are
	// stored contiguously there. n is 0 when off is not stored verbatim
	// (a stream, an allocating format, an offset past the end).
	RawRange(off int64) (f File, fileOff, n int64)
}

// OSFiler is a File backed by an OS file, whose descriptor copy offload
// hands to the kernel. Only the offload calls use it: reads and writes
// still go through the File.
type OSFiler interface {
	OSFile() *os.File
}

// OSFile is the file under an OS File (for copy offload).
func (o *osFile) OSFile() *os.File { return o.f }
