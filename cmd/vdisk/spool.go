package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sync"

	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/nbd"
	"github.com/vdiskio/vdisk/source/compressed"
	"github.com/vdiskio/vdisk/source/remote"
)

// spoolFlags are the flags of compressed and stdin sources.
type spoolFlags struct {
	limit string // --spool-limit: the most a source may decompress to
	mu    sync.Mutex
	kinds map[string]compressed.Kind // the sources spooled, by name
	stdin io.Reader                  // stdin with its first bytes peeked (nil: os.Stdin)
}

// compression names the compression of the source opened as name ("" if
// none).
func (f *spoolFlags) compression(name string) compressed.Kind {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.kinds[name]
}

func (f *spoolFlags) heard(name string, kind compressed.Kind) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.kinds == nil {
		f.kinds = map[string]compressed.Kind{}
	}
	f.kinds[name] = kind
}

func addSpoolFlags(root *cobra.Command, g *globals) {
	root.PersistentFlags().StringVar(&g.spool.limit, "spool-limit", "",
		fmt.Sprintf("the largest size a compressed (xz, zstd, gzip, bzip2) or stdin source may expand to in its temporary spool (default %dG)", compressed.DefaultLimitBytes>>30))
}

// spooled makes opts read compressed files and stdin ("-") through a
// sparse spool in outDir ("" or a URL: beside the input).
func (g *globals) spooled(ctx context.Context, opts *formats.OpenOptions, outDir string) error {
	s := &compressed.Spooler{Ctx: ctx, Open: opts.OpenFile, OnSpool: g.spool.heard, Stdin: g.spool.stdin}
	if g.spool.limit != "" {
		n, err := formats.ParseSize(g.spool.limit)
		if err != nil || n <= 0 {
			return fmt.Errorf("%w: --spool-limit %q (want a size such as 64G)", formats.ErrInvalidOption, g.spool.limit)
		}
		s.LimitBytes = n
	}
	if outDir != "" && outDir != "-" && !nbd.IsURL(outDir) && !remote.IsURL(outDir) {
		s.Dir = filepath.Dir(outDir)
	}
	pol, err := formats.ParseReferencePolicy(g.references)
	if err != nil {
		return err
	}
	s.Open = openURLs(ctx, s.Open)
	opts.OpenFile = s.OpenPath
	opts.Resolver = &remote.Resolver{Next: opts.Resolver, Policy: pol, OpenURL: s.OpenPath}
	return g.archived(opts)
}

// openURLs makes open take http(s):// URLs (range requests, or a stream
// when the server ignores Range) and file:// URLs (the local file); other
// names go to next (nil: formats.OpenOSFile).
func openURLs(ctx context.Context, next func(string, bool) (formats.File, error)) func(string, bool) (formats.File, error) {
	if next == nil {
		next = formats.OpenOSFile
	}
	return func(name string, writable bool) (formats.File, error) {
		switch {
		case remote.IsHTTP(name):
			return remote.Open(ctx, name, writable, remote.Options{})
		case remote.IsURL(name):
			path, err := remote.FilePath(name)
			if err != nil {
				return nil, err
			}
			return next(path, writable)
		}
		return next(name, writable)
	}
}

// compressionFlag is convert's --compression=xz|zstd|gzip.
type compressionFlag struct{ kind *compressed.Kind }

func (f compressionFlag) String() string {
	if f.kind == nil {
		return ""
	}
	return string(*f.kind)
}

func (f compressionFlag) Set(s string) error {
	k, err := compressed.ParseKind(s)
	if err != nil {
		return err
	}
	*f.kind = k
	return nil
}

func (compressionFlag) Type() string { return "xz|zstd|gzip" }
