// Package archive reads disk images that arrive inside tar archives: an
// OVA (an OVF package in one file), a Vagrant .box, a Google Compute
// Engine image (disk.raw in a .tar.gz) or any tar holding a disk image.
//
// A tar archive is a run of 512-byte headers, each followed by its
// member's data padded to 512 bytes, ended by two zero blocks. The
// archive is recognised by content: a ustar ("ustar\0") or GNU ("ustar ")
// magic at offset 257 of the first block and a correct header checksum.
// Index reads only the headers, so a member is read in place: a
// MemberFile maps its offsets onto the archive file (random access into an
// uncompressed tar). A gzip'd (or xz, zstd, bzip2) tar is first spooled by
// package source/compressed, and the member is read in place in the spool.
//
// Read beyond ustar: PAX extended headers (path, size; global headers
// too), GNU long names, and GNU sparse members in all four encodings
// (oldgnu 'S' headers with extension blocks, PAX 0.0, 0.1 and 1.0; see
// sparse.go): a sparse member's holes read as zeros and are reported as
// holes, so a sparse disk.raw converts sparsely.
//
// Which member is the disk:
//
//	OVA          the first member is the OVF descriptor (*.ovf); its
//	             DiskSection lists the disks in order, each naming a File
//	             of References whose ovf:href is a member. Disk 1 is the
//	             default, --disk N another.
//	Vagrant box  metadata.json plus box.ovf and its VMDKs (virtualbox) or
//	             box.img, a qcow2 (libvirt).
//	GCE          a member disk.raw.
//	other tar    the only regular member, or the one named (--member).
//
// Nothing is ever written or extracted: member names (even "../x" or
// "/etc/passwd") are only compared. An ovf:href that is a URL, an
// absolute path or climbs out with "..", or that names no member, is
// refused (ErrReferenceDenied): vdisk reads only what is in the archive.
// Sizes, sparse maps (in order, not overlapping, inside the file, adding
// up to the data stored), PAX records and the OVF descriptor (size,
// nesting depth, element count; encoding/xml expands no user-declared
// entities) are bounded before they size anything (Limits).
package archive
