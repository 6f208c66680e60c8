package formats

// ExtentsFile is a File that knows its own allocation, as an NBD export
// does through block status. Drivers ask it instead of looking for
// holes with SEEK_DATA/SEEK_HOLE, so a raw image on such a file converts
// sparsely. Offsets are file offsets; HostOffset equals Offset.
type ExtentsFile interface {
	File
	FileExtents(off, length int64) ([]Extent, error)
}
