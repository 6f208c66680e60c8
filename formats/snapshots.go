package formats

import (
	"errors"
	"time"
)

// ErrNoSnapshot is wrapped by a Snapshotter when no internal snapshot
// matches the id or name asked for.
var ErrNoSnapshot = errors.New("snapshot not found")

// Snapshotter is a writable image whose internal snapshots can be created,
// applied and deleted (qcow2: `qemu-img snapshot -c/-a/-d`).
type Snapshotter interface {
	// CreateSnapshot records the active layer as a new snapshot named name
	// and dated at.
	CreateSnapshot(name string, at time.Time) error
	// ApplySnapshot makes the active layer read as the snapshot whose id,
	// else name, is spec.
	ApplySnapshot(spec string) error
	// DeleteSnapshot deletes the first snapshot named name.
	DeleteSnapshot(name string) error
}
