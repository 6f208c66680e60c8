// Package formats is the contract between vdisk's format drivers and everything
// that uses them: the CLI, the conversion engine and library callers.
//
// A virtual disk is an Image: Size() bytes readable with ReadAt from any number of
// goroutines at once, plus Extents, which says for a range which bytes are stored
// (Data), recorded as zeros (Zero) or absent from this layer (Unallocated: read
// from the backing image, or zeros). Extents is what makes conversion sparse.
//
// Everything else a format can do is an optional interface discovered by type
// assertion, as io/fs does it: Writable, ZeroWriter, SequentialWriter,
// CompressedWriter, Checker, Resizer, Backer, Informer, ClusterSizer.
//
// Drivers register themselves in init() (as image/png does) with a Driver value:
// a name, aliases, a content probe, Open, Create and a table of create options.
// Detection is by content, never by file name; an explicit format that the
// content contradicts is ErrFormatMismatch.
//
// Every file an image names (backing files, extents, parent locators) is opened
// through a Resolver, whose default policy only allows relative names that stay
// inside the directory of the naming image.
package formats
