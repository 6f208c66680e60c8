package main

import (
	"context"
	"fmt"
	"slices"

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

// nbdResolver lets the references inside an image name NBD exports, under
// --references=any only (or when the user named the URL with -b/-B, under
// every policy but strict); everything else goes to the wrapped resolver.
type nbdResolver struct {
	formats.Resolver
	policy    formats.ReferencePolicy
	userNamed []string
}

// withNBD wraps r for the CLI's open options.
func withNBD(r formats.Resolver, policy formats.ReferencePolicy, userNamed []string) formats.Resolver {
	return &nbdResolver{Resolver: r, policy: policy, userNamed: userNamed}
}

// Unwrap is the resolver for everything but NBD URLs (formats.PolicyName).
func (r *nbdResolver) Unwrap() formats.Resolver { return r.Resolver }

func (r *nbdResolver) Resolve(from, ref string) (string, error) {
	if !nbd.IsURL(ref) {
		return r.Resolver.Resolve(from, ref)
	}
	allowed := r.policy == formats.PolicyAny ||
		(r.policy != formats.PolicyStrict && slices.Contains(r.userNamed, ref))
	if !allowed {
		return "", &formats.Error{File: from, Offset: -1, Kind: formats.ErrReferenceDenied,
			Msg: fmt.Sprintf("reference %q named by %s: an NBD URL inside an image is followed only with %s=any", ref, from, formats.ReferenceFlag)}
	}
	if _, err := nbd.ParseURL(ref); err != nil {
		return "", err
	}
	return ref, nil
}

func (r *nbdResolver) Open(from, ref string, writable bool) (formats.File, error) {
	if !nbd.IsURL(ref) {
		return r.Resolver.Open(from, ref, writable)
	}
	if _, err := r.Resolve(from, ref); err != nil {
		return nil, err
	}
	return openNBD(ref, writable)
}
