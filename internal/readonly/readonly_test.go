package readonly

import (
	"errors"
	"testing"

	"github.com/vdiskio/vdisk/formats"
)

// TestRefusals: WriteAt and Truncate refuse with formats.ErrReadOnly, in
// one message naming the file and then the reason.
func TestRefusals(t *testing.T) {
	for _, c := range []struct {
		f    File
		want string
	}{
		{New("a.qcow2.xz", "an xz-compressed image is read-only"), "a.qcow2.xz: " + formats.ErrReadOnly.Error() + ": an xz-compressed image is read-only"},
		{New("https://host/disk.img", ""), "https://host/disk.img: " + formats.ErrReadOnly.Error()},
	} {
		if got := c.f.Name(); got != c.f.name {
			t.Errorf("Name() = %q", got)
		}
		n, werr := c.f.WriteAt([]byte{1}, 0)
		terr := c.f.Truncate(0)
		for _, err := range []error{werr, terr} {
			if !errors.Is(err, formats.ErrReadOnly) || err.Error() != c.want {
				t.Errorf("%s: %v, want %q", c.f.name, err, c.want)
			}
		}
		if n != 0 {
			t.Errorf("%s: WriteAt wrote %d bytes", c.f.name, n)
		}
	}
}
