package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
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
	// memoryOnce sets the decoders' memory limit once.
	memoryOnce sync.Once
}

// decoderMemoryLimitBytes is the Go heap's soft limit while a compressed
// source is decoded. The in-place xz/zstd reader keeps about 25 MiB live
// (12 MiB of cached blocks, three 4 MiB blocks decoding, the conversion's
// chunk buffers) and allocates a block's output and decoder state per
// block; with GOGC's default the collector lets the heap grow to twice
// the live heap before it runs, which put the peak RSS of the bench's
// .qcow2.xz conversion at 84-88 MiB. A 40 MiB limit runs the collector
// before that: 54 MiB peak RSS for a few per cent more CPU. It is a soft
// limit: a larger live heap (a 64 MiB xz dictionary when spooling) only
// makes the collector run more often, within the runtime's cap on GC CPU.
const decoderMemoryLimitBytes = 40 << 20

// limitDecoderMemory sets decoderMemoryLimitBytes unless the user set
// GOMEMLIMIT (which the runtime has already applied).
func limitDecoderMemory() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(decoderMemoryLimitBytes)
	}
}

// compression names the compression of the source opened as name ("" if
// none).
func (f *spoolFlags) compression(name string) compressed.Kind {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.kinds[name]
}

func (f *spoolFlags) heard(name string, kind compressed.Kind) {
	if kind != compressed.None {
		f.memoryOnce.Do(limitDecoderMemory)
	}
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
