// Package cloudpkg writes disk images packaged as clouds and hypervisors
// import them: an OVA for vSphere and VirtualBox, and the disk.raw tar.gz
// of Google Compute Engine. Each is a formats.Driver that is not in the
// registry (nothing probes as "ova" or "gce": reading them is package
// source/archive's work), handed to the conversion engine with
// convert.Job.Driver, so the output is written atomically through convert's
// temporary-file machinery like any image.
//
// OVA (DSP0243 1.1, one file): a POSIX ustar archive of
//
//	NAME.ovf         the OVF 1.x descriptor: References (the VMDK, its
//	                 size), DiskSection (capacity, streamOptimized format),
//	                 a VirtualSystem with an OperatingSystemSection and a
//	                 VirtualHardwareSection: CPUs, memory, one controller
//	                 (IDE PIIX4, or SCSI lsilogic, buslogic, lsilogicsas,
//	                 VirtualSCSI) and the disk on it
//	NAME.mf          the manifest: "SHA256(FILE)= hex" for the descriptor
//	                 and the disk
//	NAME-disk1.vmdk  the disk, a streamOptimized VMDK
//
// in that order: the descriptor first, the manifest right after it, then
// the files in the order References lists them (DSP0243 5.3), which is
// also ovftool's order. The VMDK is written into an unlinked temporary
// file beside the output (its size and digest go before it in the
// archive), then copied in.
//
// GCE: disk.raw written into a sparse temporary file, then a tar of one
// oldgnu sparse member ('S' header, the data runs' map in the header and
// extension blocks, realsize) holding only the data runs, so neither the
// tar nor the extracted file expands the holes (tar --sparse -x keeps
// them). The tar goes through source/compressed's parallel gzip writer
// (klauspost/compress, independent members), which gzip, tar -z and
// Compute Engine read as one stream.
package cloudpkg
