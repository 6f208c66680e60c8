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
// Images live in Files: Open opens an OS path, OpenFile any File
// implementation, OpenReaderAt any io.ReaderAt of known size (read-only),
// OpenFS a name in an io/fs.FS. A File's abilities beyond reading and
// writing are optional interfaces too (Syncer, HoleFinder, HolePuncher,
// Preallocator, AllocationSizer, FixedSizer, SequentialFile, ExtentsFile):
// a remote backend implements what it can and the drivers adapt.
//
// Drivers register themselves in init() (as image/png does) with a Driver value:
// a name, aliases, a content probe, Open, Create and a table of create options
// (the zero Options means every default). Detection is by content, never by
// file name; an explicit format that the content contradicts is
// ErrFormatMismatch. Every call that does I/O takes a context.Context.
//
// Every file an image names (backing files, extents, parent locators) is
// opened through the OpenOptions' Resolver under a ReferencePolicy: a
// DirResolver for OS files (the zero value allows only relative names that
// stay inside the directory of the naming image), an FSResolver for an
// io/fs.FS, or a backend's own Resolver applying the policy with CheckName,
// so that the references of a remote image resolve in the same backend.
//
// Errors wrap the sentinels (ErrCorrupt, ErrUnsupported, ErrLimit,
// ErrReferenceDenied, ...) for errors.Is, and an *Error names the file,
// structure and offset. Package formats/formatstest is the conformance
// suite every driver passes; helpers only drivers need live in
// internal/imageio.
package formats
