// Package mapfile maps a range of an OS file into memory when all of it is
// in the page cache, so that a copy reads the cached pages where they are
// instead of copying them into a buffer first (read(2) is one memory copy
// per byte, the dearest part of a page-cache-to-page-cache conversion
// after the write's own copy).
//
// Map refuses (ok false, and the caller reads the ordinary way) whenever
// the mapping could cost more than the read it replaces: a page not in the
// page cache (mincore(2) says so; faulting pages in one at a time is
// slower than one large read from the disk), an OS other than Linux. The
// mapping is private and writable: a caller that scribbles on the bytes
// changes its own copy, never the file.
//
// A mapped file that shrinks under the mapping makes the pages past its
// new end fault (SIGBUS). Go turns that into a panic only where
// debug.SetPanicOnFault is on: Guard runs a function so, and reports the
// fault as an error, so that the caller falls back to a read, which then
// reports the shrunk source as it should.
package mapfile
