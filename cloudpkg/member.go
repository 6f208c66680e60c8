package cloudpkg

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/scratch"
)

// member says how a package's disk is written before it is packaged.
type member struct {
	format  string // the driver that writes the disk
	options string // its -o options
	name    string // its name inside the package
	temp    string // the pattern of its temporary file beside the output
	what    string // the temporary file in errors
}

// diskImage is a package's disk being written into a temporary file beside
// the output; finish closes it and hands the file to the packaging.
type diskImage struct {
	formats.Writable // the disk, written into tmp
	tmp              *scratch.File
	out              formats.File // the package
	name             string       // the package's name
	closed           bool
}

// createDisk starts the disk m of the package req asks for.
func createDisk(ctx context.Context, req formats.CreateRequest, m member) (*diskImage, error) {
	drv, err := formats.Lookup(m.format)
	if err != nil {
		return nil, err
	}
	opts, err := formats.ParseOptions(drv.CreateOptions, m.options)
	if err != nil {
		return nil, err
	}
	tmp, err := scratch.Create(filepath.Dir(req.Name), m.temp)
	if err != nil {
		return nil, fmt.Errorf("%s: the %s temporary file: %w", req.Name, m.what, err)
	}
	w, err := drv.Create(ctx, formats.CreateRequest{File: kept{tmp}, Name: filepath.Join(filepath.Dir(req.Name), m.name),
		Size: req.Size, Options: opts, Open: req.Open})
	if err != nil {
		tmp.Close()
		return nil, err
	}
	return &diskImage{Writable: w, tmp: tmp, out: req.File, name: req.Name}, nil
}

// finish closes the disk and, when that worked, packages it with pack;
// once only (a second call does nothing), and the temporary file is
// removed either way.
func (d *diskImage) finish(pack func() error) error {
	if d.closed {
		return nil
	}
	d.closed = true
	defer d.tmp.Close()
	if err := d.Writable.Close(); err != nil {
		return err
	}
	return pack()
}

// abandon closes the disk and removes its temporary file (a package that
// could not start).
func (d *diskImage) abandon() {
	d.Writable.Close()
	d.tmp.Close()
}
