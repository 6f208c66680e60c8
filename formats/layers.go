package formats

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/vdiskio/vdisk/internal/fileid"
)

// Backing chains are opened one layer at a time through OpenReference.
// Before a layer's driver loads any table, the layer's file is compared by identity (os.SameFile: device and inode, or the volume and
// file index on Windows) with every layer above it: a file that is already
// in the chain is a loop, refused with one line naming it. The depth limit
// is checked first, and an error from any layer reaches the top unwrapped,
// so a 1000-deep chain fails in one line too.

// chainLayer is one image of the chain being opened.
type chainLayer struct {
	name string
	id   fileid.ID
}

// chainState is shared by every layer of one open (the top image's
// OpenFile makes it): the layers that failed to open, so that a driver
// trying several locators of the same parent does not open it again.
type chainState struct {
	mu     sync.Mutex
	failed []failedLayer
}

type failedLayer struct {
	id    fileid.ID
	depth int
	err   error
}

func (s *chainState) failure(id fileid.ID, depth int) error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.failed {
		if f.depth == depth && f.id.Same(id) {
			return f.err
		}
	}
	return nil
}

func (s *chainState) remember(id fileid.ID, depth int, err error) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failed = append(s.failed, failedLayer{id, depth, err})
}

// chainError is the error of one layer of a chain; the layers above return
// it as it is instead of wrapping it again.
type chainError struct{ err error }

func (e *chainError) Error() string { return e.err.Error() }
func (e *chainError) Unwrap() error { return e.err }

// ErrBackingLoop is the Kind of the error for a chain that names a file
// already in it; errors.Is(err, ErrCorrupt) holds for it too.
var ErrBackingLoop error = loopKind{}

type loopKind struct{}

func (loopKind) Error() string        { return "backing loop" }
func (loopKind) Is(target error) bool { return target == ErrCorrupt }

// loopError names the loop: the layers from the first one f repeats.
func loopError(from string, loop []chainLayer, again string) error {
	names := make([]string, 0, len(loop)+1)
	for _, l := range loop {
		names = append(names, l.name)
	}
	names = append(names, again)
	return &chainError{&Error{File: from, Structure: "backing chain", Offset: -1, Kind: ErrBackingLoop,
		Msg: strings.Join(names, " -> ")}}
}

// openLayer opens f, named ref by the image from, as the layer below the
// chain in opts (whose depth the caller has already increased).
func openLayer(ctx context.Context, from, ref string, f File, opts OpenOptions) (Image, error) {
	layers := opts.layers
	if len(layers) == 0 {
		layers = []chainLayer{{name: from, id: fileid.OfPath(from)}}
	}
	id := fileid.Of(f)
	for i, l := range layers {
		if l.id.Same(id) {
			f.Close()
			return nil, loopError(from, layers[i:], f.Name())
		}
	}
	if err := opts.chain.failure(id, opts.depth); err != nil {
		f.Close()
		return nil, err
	}
	opts.layers = append(slices.Clip(layers), chainLayer{name: f.Name(), id: id})
	img, err := OpenFile(ctx, f, opts)
	if err == nil {
		return img, nil
	}
	f.Close()
	var ce *chainError
	if errors.As(err, &ce) {
		err = ce
	} else {
		err = &chainError{fmt.Errorf("%s: opening backing file %q: %w", from, ref, err)}
	}
	opts.chain.remember(id, opts.depth, err)
	return nil, err
}

// childOptions are the options of the layer below: read-only, probed or of
// format, one deeper.
func childOptions(opts OpenOptions, format string) OpenOptions {
	child := opts
	child.Format, child.ForceFormat, child.Writable, child.Snapshot = format, false, false, ""
	child.Key = nil // a key unlocks the image it was given for, not its backing files
	child.depth++
	child.EnsureBudget()
	if child.chain == nil {
		child.chain = &chainState{}
	}
	return child
}
