package qcow2

import (
	"errors"
	"fmt"

	"github.com/vdiskio/vdisk/formats"
)

// ErrNoBitmap is wrapped when no bitmap has the name asked for.
var ErrNoBitmap = errors.New("dirty bitmap not found")

// BitmapError is a refusal in qemu's words (qemu-img bitmap prints
// "Operation OP on bitmap NAME failed: " before it).
type BitmapError struct {
	Msg  string
	Kind error
}

func (e *BitmapError) Error() string { return e.Msg }
func (e *BitmapError) Unwrap() error { return e.Kind }

func bitmapRefusal(kind error, format string, args ...any) error {
	return &BitmapError{Msg: fmt.Sprintf(format, args...), Kind: kind}
}

// ReadBitmaps returns copies of the image's persistent dirty bitmaps (read
// from the file, or as a writable image holds them).
func (img *Image) ReadBitmaps() ([]*Bitmap, error) {
	img.mu.Lock()
	defer img.mu.Unlock()
	var list []*Bitmap
	if img.w != nil && img.w.bms != nil {
		list = img.w.bms.list
	} else {
		st, err := img.loadBitmaps()
		if err != nil {
			return nil, err
		}
		list = st.list
	}
	out := make([]*Bitmap, len(list))
	for i, b := range list {
		c := *b
		c.Bits = append([]byte(nil), b.Bits...)
		out[i] = &c
	}
	return out, nil
}

// DefaultBitmapGranularity is qemu's: the cluster size within 4 KiB..64 KiB.
func (img *Image) DefaultBitmapGranularity() int64 {
	return min(max(img.clusterSize, 4096), 65536)
}

// bitmapsFor checks that the image can change bitmaps and returns them
// (caller holds img.mu).
func (img *Image) bitmapsFor() (*bitmapState, error) {
	if err := img.writable(); err != nil {
		return nil, err
	}
	if img.w.bms == nil {
		img.w.bms = &bitmapState{}
	}
	return img.w.bms, nil
}

func (st *bitmapState) find(name string) (int, *Bitmap) {
	for i, b := range st.list {
		if b.Name == name {
			return i, b
		}
	}
	return -1, nil
}

func notFound(name string) error {
	return bitmapRefusal(ErrNoBitmap, "Dirty bitmap '%s' not found", name)
}

// AddBitmap adds an empty bitmap (qemu-img bitmap --add [-g GRAN]); gran 0
// is the default granularity.
func (img *Image) AddBitmap(name string, gran int64, enabled bool) error {
	img.mu.Lock()
	defer img.mu.Unlock()
	st, err := img.bitmapsFor()
	if err != nil {
		return err
	}
	switch {
	case name == "":
		return bitmapRefusal(formats.ErrInvalidOption, "Bitmap name cannot be empty")
	case len(name) > maxBitmapName:
		return bitmapRefusal(formats.ErrInvalidOption, "Bitmap name is too long (%d bytes, qcow2 allows %d)", len(name), maxBitmapName)
	case img.hdr.Version < 3:
		return bitmapRefusal(formats.ErrUnsupported, "Can't make bitmap '%s' persistent in '%s': Cannot store dirty bitmaps in qcow2 v2 files", name, img.name)
	case len(st.list) >= maxBitmaps:
		return bitmapRefusal(formats.ErrLimit, "Bitmap '%s' cannot be stored: already %d bitmaps", name, len(st.list))
	}
	if _, b := st.find(name); b != nil {
		return bitmapRefusal(formats.ErrInvalidOption, "Bitmap already exists: %s", name)
	}
	if gran == 0 {
		gran = img.DefaultBitmapGranularity()
	}
	if gran < 512 || gran&(gran-1) != 0 || gran > 1<<maxBitmapGran {
		return bitmapRefusal(formats.ErrInvalidOption, "Granularity must be power of 2 and at least 512")
	}
	nbits := bitmapBits(img.size, gran)
	if err := img.budget.Charge(img.name, "bitmap "+name, -1, (nbits+7)/8); err != nil {
		return err
	}
	st.list = append(st.list, &Bitmap{Name: name, Granularity: gran, Enabled: enabled, Bits: make([]byte, (nbits+7)/8)})
	return img.storeBitmaps(st.inUseDisk)
}

// RemoveBitmap deletes a bitmap (--remove).
func (img *Image) RemoveBitmap(name string) error {
	return img.editBitmap(name, func(st *bitmapState, i int, _ *Bitmap) error {
		st.list = append(st.list[:i:i], st.list[i+1:]...)
		return nil
	})
}

// ClearBitmap resets every bit (--clear).
func (img *Image) ClearBitmap(name string) error {
	return img.editBitmap(name, func(_ *bitmapState, _ int, b *Bitmap) error {
		if b.InUse {
			return inconsistent(name)
		}
		clear(b.Bits)
		return nil
	})
}

// EnableBitmap sets whether writes mark the bitmap (--enable, --disable).
func (img *Image) EnableBitmap(name string, on bool) error {
	return img.editBitmap(name, func(_ *bitmapState, _ int, b *Bitmap) error {
		if b.InUse {
			return inconsistent(name)
		}
		b.Enabled = on
		return nil
	})
}

// MergeBitmap sets in bitmap name every range src marks (--merge, src from
// this image or another of the same virtual size; granularities may
// differ: a range src marks is marked whole in name).
func (img *Image) MergeBitmap(name string, src *Bitmap, srcSize int64) error {
	return img.editBitmap(name, func(_ *bitmapState, _ int, b *Bitmap) error {
		if b.InUse {
			return inconsistent(name)
		}
		if src.InUse {
			return inconsistent(src.Name)
		}
		if srcSize != img.size {
			return bitmapRefusal(formats.ErrInvalidOption, "Bitmaps are of different sizes (destination size is %d, source size is %d) and can't be merged", img.size, srcSize)
		}
		for i := int64(0); i < int64(len(src.Bits))*8; i++ {
			if src.Bits[i/8]&(1<<(i%8)) == 0 {
				continue
			}
			off := i * src.Granularity
			if off >= img.size {
				break
			}
			end := min(off+src.Granularity, img.size)
			for k := off / b.Granularity; k <= (end-1)/b.Granularity; k++ {
				b.Bits[k/8] |= 1 << (k % 8)
			}
		}
		return nil
	})
}

func inconsistent(name string) error {
	return bitmapRefusal(formats.ErrUnsupported, "Bitmap '%s' is inconsistent and cannot be used", name)
}

// editBitmap runs fn on the named bitmap and stores the result.
func (img *Image) editBitmap(name string, fn func(*bitmapState, int, *Bitmap) error) error {
	img.mu.Lock()
	defer img.mu.Unlock()
	st, err := img.bitmapsFor()
	if err != nil {
		return err
	}
	i, b := st.find(name)
	if b == nil {
		return notFound(name)
	}
	if err := fn(st, i, b); err != nil {
		return err
	}
	return img.storeBitmaps(st.inUseDisk)
}

// Marked reports the virtual ranges [off, off+length) a bitmap marks, in
// order, merged where adjacent, clipped to size.
func (b *Bitmap) Marked(size int64) [][2]int64 {
	var out [][2]int64
	for i := int64(0); i < int64(len(b.Bits))*8; i++ {
		if b.Bits[i/8]&(1<<(i%8)) == 0 {
			continue
		}
		off := i * b.Granularity
		if off >= size {
			break
		}
		end := min(off+b.Granularity, size)
		if n := len(out); n > 0 && out[n-1][0]+out[n-1][1] == off {
			out[n-1][1] = end - out[n-1][0]
			continue
		}
		out = append(out, [2]int64{off, end - off})
	}
	return out
}
