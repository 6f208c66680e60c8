package formats

// BackingSetter is a writable image whose backing link can be changed in
// place (qemu-img rebase). SetBacking flushes the image's pending writes,
// makes them durable, then rewrites the stored link to name with format
// ("" stores no format; name "" removes the link and the format) and makes
// that durable too: an interruption leaves either the old link or the new
// one. backing, which may be nil, becomes the image's open backing for
// later reads and Backing(); the image owns it (closes it on Close) and
// closes the backing it had.
type BackingSetter interface {
	SetBacking(name, format string, backing Image) error
}

// Emptier is a writable image that can drop everything it stores, so that
// it reads through to its backing image again (qemu-img commit empties the
// committed top). The metadata change is flushed before MakeEmpty returns.
type Emptier interface {
	MakeEmpty() error
}
