package formats

import "context"

// ChainExtents reports the status of [off, off+length) through img's backing
// chain: a range Unallocated in one layer is asked of the layer below, with
// Depth counting layers. Ranges no layer allocates stay Unallocated (they
// read as zeros) with the depth of the bottom layer reached; ranges past the
// end of a shorter backing image read as zeros and are reported Unallocated.
func ChainExtents(img Image, off, length int64) ([]Extent, error) {
	return chainExtents(img, off, length, 0)
}

func chainExtents(img Image, off, length int64, depth int) ([]Extent, error) {
	exts, err := img.Extents(off, length)
	if err != nil {
		return nil, err
	}
	var backing Image
	if b, ok := img.(Backer); ok {
		backing = b.Backing()
	}
	out := make([]Extent, 0, len(exts))
	for _, e := range exts {
		e.Depth = depth
		if e.Kind != Unallocated || backing == nil || e.Offset >= backing.Size() {
			out = appendExtent(out, e)
			continue
		}
		below := min(e.Length, backing.Size()-e.Offset)
		sub, err := chainExtents(backing, e.Offset, below, depth+1)
		if err != nil {
			return nil, err
		}
		for _, s := range sub {
			out = appendExtent(out, s)
		}
		if below < e.Length {
			out = appendExtent(out, Extent{Offset: e.Offset + below, Length: e.Length - below,
				Kind: Unallocated, HostOffset: -1, Depth: depth})
		}
	}
	return out, nil
}

// appendExtent appends e to out, merging it into the last extent when e
// continues it.
func appendExtent(out []Extent, e Extent) []Extent {
	if n := len(out); n > 0 && out[n-1].Continues(e) {
		out[n-1].Length += e.Length
		return out
	}
	return append(out, e)
}

// SectorBytes is the unit qemu sizes disks in.
const SectorBytes = 512

// RoundSize rounds a requested virtual size up to whole sectors, as qemu
// does for every new image.
func RoundSize(size int64) int64 {
	return (size + SectorBytes - 1) / SectorBytes * SectorBytes
}

// BackingSize is the virtual size of the backing image ref that a new
// image at from would name (create -b without a size takes it), opened
// through opts' Resolver as format ("" probes).
func BackingSize(ctx context.Context, from, ref, format string, opts OpenOptions) (int64, error) {
	img, err := OpenReference(ctx, from, ref, format, opts)
	if err != nil {
		return 0, err
	}
	defer img.Close()
	return img.Size(), nil
}
