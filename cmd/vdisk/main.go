// Command vdisk reads, writes, checks and converts virtual disk images (raw,
// qcow2, vmdk, vhd/vpc, vhdx, vdi, iso) with qemu-img's subcommands, flags,
// JSON output and exit codes.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/imagefile"
	"github.com/vdiskio/vdisk/nbd"
	"github.com/vdiskio/vdisk/partition"
	"github.com/vdiskio/vdisk/source/split"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// exitError carries a process exit code (qemu-img's codes for check and
// compare); its message may be empty when the output already said it all.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func exitWith(code int, err error) error { return &exitError{code: code, err: err} }

// globals are flags shared by subcommands.
type globals struct {
	references  string
	parents     []string
	quiet       bool
	forceFormat bool
	crypto      cryptoFlags
	forceShare  bool            // -U: no image locks on images opened read-only
	locks       imagefile.Locks // qemu image locks held until the command ends
	maxMetadata string          // --max-metadata: the metadata budget of each open image
	spool       spoolFlags      // --spool-limit: compressed and stdin sources
	archive     archiveFlags    // --disk, --member: tar sources (OVA, box, tar.gz)
}

// openOptions are the options to open images with; userNamed are the
// references the user gave on the command line (-b, -B), allowed under
// every policy but strict.
func (g *globals) openOptions(format string, userNamed ...string) (formats.OpenOptions, error) {
	pol, err := formats.ParseReferencePolicy(g.references)
	if err != nil {
		return formats.OpenOptions{}, err
	}
	secrets, err := g.crypto.parseSecrets()
	if err != nil {
		return formats.OpenOptions{}, err
	}
	var lim formats.Limits
	if g.maxMetadata != "" {
		if lim.MaxMetadataBytes, err = formats.ParseSize(g.maxMetadata); err != nil || lim.MaxMetadataBytes <= 0 {
			return formats.OpenOptions{}, fmt.Errorf("%w: %s %q (want a size such as 512M)", formats.ErrInvalidOption, formats.MetadataFlag, g.maxMetadata)
		}
	}
	userNamed = slices.DeleteFunc(userNamed, func(s string) bool { return s == "" })
	return formats.OpenOptions{Format: format, ForceFormat: g.forceFormat && format != "", Limits: lim,
		Resolver: withNBD(&formats.DirResolver{Policy: pol, UserNamed: userNamed}, pol, userNamed), Parents: g.parents, Secrets: secrets,
		OpenFile: split.OpenPath}, nil
}

// referencesEnv names the environment variable that sets the CLI's default
// reference policy; --references overrides it.
const referencesEnv = "VDISK_REFERENCES"

// defaultReferences is the policy when --references is not given: the
// environment's, else local.
func defaultReferences() string {
	if p := os.Getenv(referencesEnv); p != "" {
		return p
	}
	return "local"
}

// warn returns a function that prints a warning line on the command's stderr.
func (g *globals) warn(cmd *cobra.Command) func(string) {
	return func(msg string) { fmt.Fprintln(cmd.ErrOrStderr(), "vdisk: warning: "+msg) }
}

// open opens an image with the global reference policy and takes qemu's
// image locks for reading or, when edit makes it writable, writing; edit
// adjusts the options (writable, no backing...) when not nil.
func (g *globals) open(ctx context.Context, path, format string, edit func(*formats.OpenOptions)) (formats.Image, error) {
	return g.openAs(ctx, path, format, imagefile.LockRead, edit)
}

// openAs is open with the lock role given (LockRead becomes LockWrite for a
// writable open). -U skips the locks of read-only opens.
func (g *globals) openAs(ctx context.Context, path, format string, role imagefile.LockRole, edit func(*formats.OpenOptions)) (formats.Image, error) {
	path, part := splitPartition(path)
	if part > 0 && edit != nil {
		var probe formats.OpenOptions
		if edit(&probe); probe.Writable {
			return nil, fmt.Errorf("%s:%d: a partition is read-only here; write to the whole image", path, part)
		}
	}
	img, err := g.openWhole(ctx, path, format, role, edit)
	if err != nil || part == 0 {
		return img, err
	}
	view, _, err := partition.Open(img, part, true)
	if err != nil {
		img.Close()
		return nil, couldNotOpen(fmt.Sprintf("%s:%d", path, part), err)
	}
	return view, nil
}

// partitionSuffix is the IMAGE:N form that names partition N of an image.
var partitionSuffix = regexp.MustCompile(`^(.+):([1-9][0-9]{0,3})$`)

// splitPartition separates IMAGE:N into the image and partition N (0 when
// path names no partition: it exists as given, or has no :N suffix, or
// what precedes the suffix is neither a file nor a URL).
func splitPartition(path string) (string, int) {
	m := partitionSuffix.FindStringSubmatch(path)
	if m == nil {
		return path, 0
	}
	if _, err := os.Stat(path); err == nil {
		return path, 0
	}
	if _, err := os.Stat(m[1]); err != nil && !nbd.IsURL(m[1]) {
		return path, 0
	}
	n, _ := strconv.Atoi(m[2])
	return m[1], n
}

// openWhole opens a whole image (openAs without partition addressing).
func (g *globals) openWhole(ctx context.Context, path, format string, role imagefile.LockRole, edit func(*formats.OpenOptions)) (formats.Image, error) {
	opts, err := g.openOptions(format)
	if err != nil {
		return nil, err
	}
	if path, err = g.applyKeys(path, &opts); err != nil {
		return nil, err
	}
	if edit != nil {
		edit(&opts)
	}
	if err := g.spooled(ctx, &opts, ""); err != nil {
		return nil, err
	}
	open, remote := formats.Open, nbd.IsURL(path)
	if remote {
		open = openNBDImage // an export: no local file to lock
	}
	img, err := open(ctx, path, opts)
	if err != nil {
		return nil, couldNotOpen(path, err)
	}
	if opts.Writable && role == imagefile.LockRead {
		role = imagefile.LockWrite
	}
	if (opts.Writable || !g.forceShare) && !remote {
		if err := g.locks.Lock(path, img, role); err != nil {
			img.Close()
			return nil, couldNotOpen(path, err)
		}
	}
	return img, nil
}

// couldNotOpen words an open failure as qemu-img does ("Could not open
// 'FILE': ..."), the phrase clients look for on stderr.
func couldNotOpen(path string, err error) error { return imagefile.CouldNotOpen(path, err) }

// newRootCommand builds the command tree; the globals it returns hold the
// image locks, released when the command ends.
func newRootCommand(stdout, stderr io.Writer) (*cobra.Command, *globals) {
	g := &globals{}
	root := &cobra.Command{
		Use:           "vdisk",
		Short:         "Read, write, check and convert virtual disk images",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().StringVar(&g.references, "references", defaultReferences(),
		"which files an image may name: local (any regular file), safe (relative, inside its directory), strict (none) or any; default from $"+referencesEnv)
	root.PersistentFlags().StringVar(&g.maxMetadata, strings.TrimPrefix(formats.MetadataFlag, "--"), "",
		"metadata memory one open image and its chain may use (tables, caches), e.g. 512M; default 128M")
	root.PersistentFlags().StringArrayVar(&g.parents, "parent", nil,
		"parent image for a differencing image that names its parent only by UUID (VDI)")
	root.PersistentFlags().BoolVar(&g.forceFormat, "force-format", false,
		"open images as -f says even when their content looks like another format")
	addCryptoFlags(root, g)
	addSpoolFlags(root, g)
	addArchiveFlags(root, g)
	root.PersistentFlags().BoolVarP(&g.forceShare, "force-share", "U", false,
		"take no qemu image locks on images opened read-only (read an image a running VM uses)")
	root.AddCommand(
		newInfoCommand(g), newConvertCommand(g), newCreateCommand(g), newCompareCommand(g),
		newMapCommand(g), newMeasureCommand(g), newCheckCommand(g), newResizeCommand(g),
		newDDCommand(g), newSnapshotCommand(g), newISOCommand(),
		newChecksumCommand(g), newVerifyCommand(g), newRescueCommand(g),
		newServeCommand(g), newRebaseCommand(g), newCommitCommand(g), newAmendCommand(g), newBitmapCommand(g),
		newLsCommand(g), newCatCommand(g), newExtractCommand(g), newTarCommand(g),
	)
	applyNewcomerAids(root)
	return root, g
}

func main() {
	os.Exit(runAs(progName(os.Args[0]), os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the CLI as vdisk and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int { return runAs("vdisk", args, stdout, stderr) }

// runAs executes the CLI under the name prog ("vdisk" or "qemu-img", see
// identity.go) and returns the exit code; SIGINT and SIGTERM cancel the
// context (see interrupts), so every command stops at its next I/O and
// conversions clean up their temporary files.
func runAs(prog string, args []string, stdout, stderr io.Writer) int {
	ctx, stop := interrupts(prog, stderr)
	defer stop()
	root, g := newRootCommand(stdout, stderr)
	defer g.locks.Release()
	setIdentity(root, prog)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return 130 // "interrupted" is said when the signal came
	}
	if msg := err.Error(); msg != "" {
		if prog != "qemu-img" {
			msg = hint(msg, root)
		}
		fmt.Fprintln(stderr, prog+": "+oneLine(msg))
	}
	return code
}

// interrupts returns a context that the first SIGINT or SIGTERM cancels.
// The signal is acknowledged at once on stderr ("vdisk: interrupted"), while
// the command stops at its next I/O and removes what it was writing; a
// second signal is no longer caught and ends the process at once.
func interrupts(prog string, stderr io.Writer) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-sigs:
			signal.Reset(os.Interrupt, syscall.SIGTERM)
			cancel() // before saying so: whoever hears it finds ctx done
			fmt.Fprintln(stderr, prog+": interrupted")
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(done)
		cancel()
	}
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}
