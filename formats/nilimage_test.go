package formats_test

import (
	"context"
	"errors"
	"testing"

	_ "github.com/vdiskio/vdisk/ewf"
	"github.com/vdiskio/vdisk/formats"
	_ "github.com/vdiskio/vdisk/iso"
	_ "github.com/vdiskio/vdisk/luks"
	_ "github.com/vdiskio/vdisk/qcow2"
	_ "github.com/vdiskio/vdisk/raw"
	_ "github.com/vdiskio/vdisk/vdi"
	_ "github.com/vdiskio/vdisk/vhd"
	_ "github.com/vdiskio/vdisk/vhdx"
	_ "github.com/vdiskio/vdisk/vmdk"
)

var errBroken = errors.New("broken storage")

// brokenFile is storage on which every call fails.
type brokenFile struct{}

func (brokenFile) ReadAt([]byte, int64) (int, error)  { return 0, errBroken }
func (brokenFile) WriteAt([]byte, int64) (int, error) { return 0, errBroken }
func (brokenFile) Size() (int64, error)               { return 0, errBroken }
func (brokenFile) Truncate(int64) error               { return errBroken }
func (brokenFile) Close() error                       { return nil }
func (brokenFile) Name() string                       { return "broken" }

// TestFailedOpenCreateReturnNil: a driver whose Open or Create fails returns
// a nil interface, so `if img != nil { img.Close() }` is safe (a typed nil
// pointer in the interface made that call panic).
func TestFailedOpenCreateReturnNil(t *testing.T) {
	ctx := context.Background()
	for _, d := range formats.Drivers() {
		name := d.Name
		img, err := d.Open(ctx, brokenFile{}, formats.OpenOptions{})
		if err == nil {
			t.Errorf("%s: Open on broken storage succeeded", name)
		}
		if img != nil {
			t.Errorf("%s: failed Open returned a non-nil Image (%T)", name, img)
		}
		if d.Create == nil {
			continue
		}
		w, err := d.Create(ctx, formats.CreateRequest{File: brokenFile{}, Name: "broken", Size: 1 << 20})
		if err == nil {
			t.Errorf("%s: Create on broken storage succeeded", name)
		}
		if w != nil {
			t.Errorf("%s: failed Create returned a non-nil Writable (%T)", name, w)
		}
	}
}
