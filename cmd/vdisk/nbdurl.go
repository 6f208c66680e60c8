package main

import (
	"context"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/nbd"
)

// NBD URLs the user names on the command line (nbd://host[:port]/export,
// nbd+unix:///export?socket=PATH, nbds://...) are opened as files: the
// format of their content is probed (or given with -f), as qemu-img does.

// openNBD connects to an NBD URL.
func openNBD(url string, writable bool) (*nbd.Client, error) {
	return nbd.Dial(context.Background(), url, nbd.DialOptions{Writable: writable})
}

// openNBDImage opens the image an NBD export holds.
func openNBDImage(ctx context.Context, url string, opts formats.OpenOptions) (formats.Image, error) {
	c, err := openNBD(url, opts.Writable)
	if err != nil {
		return nil, err
	}
	img, err := formats.OpenFile(ctx, c, opts)
	if err != nil {
		c.Close()
		return nil, err
	}
	return img, nil
}

// openRemote is convert's Job.OpenRemote: NBD URLs, nothing else.
func openRemote(name string, writable bool) (formats.File, error) {
	if !nbd.IsURL(name) {
		return nil, nil
	}
	return openNBD(name, writable)
}
