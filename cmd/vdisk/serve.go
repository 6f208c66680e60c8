package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/imagefile"
	"github.com/vdiskio/vdisk/nbd"
)

func newServeCommand(g *globals) *cobra.Command {
	var (
		format, socket, bind, export, description, tlsCert, tlsKey string
		readOnly, persistent                                       bool
		shared                                                     int
	)
	cmd := &cobra.Command{
		Use:   "serve [-f fmt] [--socket PATH | --bind ADDR:PORT] [--export NAME] [--read-only] [--persistent] [--shared N] [--tls-cert FILE --tls-key FILE] IMG",
		Short: "Serve an image (any format, chains included) over NBD",
		Long: `Serve an image over NBD (fixed newstyle, structured replies, base:allocation
block status, FLUSH/TRIM/WRITE_ZEROES), as qemu-nbd does, for any format vdisk
reads. Without --persistent the server exits when the last client disconnects.
Without --socket it listens on TCP, localhost:10809 unless --bind says otherwise.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if socket != "" && cmd.Flags().Changed("bind") {
				return fmt.Errorf("--socket and --bind are exclusive")
			}
			if shared < 1 {
				return fmt.Errorf("--shared must be at least 1, not %d", shared)
			}
			if (tlsCert == "") != (tlsKey == "") {
				return fmt.Errorf("--tls-cert and --tls-key go together")
			}
			srv := &nbd.Server{MaxConnections: shared, StopWhenIdle: !persistent}
			if tlsCert != "" {
				cert, err := tls.LoadX509KeyPair(tlsCert, tlsKey)
				if err != nil {
					return fmt.Errorf("loading the TLS certificate: %w", err)
				}
				srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
			}
			exp, closeImage, err := openExport(cmd.Context(), g, args[0], format, !readOnly)
			if err != nil {
				return err
			}
			defer closeImage()
			exp.Name, exp.Description = export, description
			srv.Exports = []*nbd.Export{exp}
			l, url, err := listen(socket, bind, export, srv.TLSConfig != nil)
			if err != nil {
				return err
			}
			if !g.quiet {
				fmt.Fprintf(cmd.ErrOrStderr(), "vdisk: serving %s (%s, %s) on %s\n", args[0], exp.Image.Format(),
					map[bool]string{true: "read-only", false: "writable"}[!exp.Writable], url)
			}
			err = srv.Serve(cmd.Context(), l)
			if errors.Is(err, context.Canceled) && cmd.Context().Err() != nil {
				err = nil // SIGINT/SIGTERM is how a server is stopped: exit 0, as qemu-nbd does
			}
			if cerr := closeImage(); err == nil {
				err = cerr
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVarP(&format, "format", "f", "", "image format (probed when omitted)")
	f.StringVarP(&socket, "socket", "k", "", "listen on this unix socket")
	f.StringVarP(&bind, "bind", "b", "localhost:10809", "listen on this TCP address:port")
	f.StringVarP(&export, "export", "x", "", "export name (default: the empty name)")
	f.StringVarP(&description, "description", "D", "", "export description (nbdinfo --list shows it)")
	f.BoolVarP(&readOnly, "read-only", "r", false, "export read-only (multi-conn is offered)")
	f.BoolVarP(&persistent, "persistent", "t", false, "keep serving after the last client disconnects")
	f.IntVarP(&shared, "shared", "e", 16, "serve this many clients at once (more wait)")
	f.StringVar(&tlsCert, "tls-cert", "", "PEM certificate: require TLS")
	f.StringVar(&tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	f.BoolVarP(&g.quiet, "quiet", "q", false, "do not print where the server listens")
	return cmd
}

// openExport opens the image for serving, keeping its OS file to fsync on
// NBD_CMD_FLUSH.
func openExport(ctx context.Context, g *globals, path, format string, writable bool) (*nbd.Export, func() error, error) {
	opts, err := g.openOptions(format)
	if err != nil {
		return nil, nil, err
	}
	opts.Writable = writable
	if path, err = g.applyKeys(path, &opts); err != nil {
		return nil, nil, err
	}
	f, err := formats.OpenOSFile(path, writable)
	if err != nil {
		return nil, nil, err
	}
	if size, err := f.Size(); err == nil && size == 0 {
		f.Close()
		return nil, nil, fmt.Errorf("%s: empty file (0 bytes) is not a disk image", path)
	}
	img, err := formats.OpenFile(ctx, f, opts)
	if err != nil {
		f.Close()
		if writable && errors.Is(err, formats.ErrReadOnly) {
			return nil, nil, fmt.Errorf("%w (serve it with --read-only)", err)
		}
		return nil, nil, err
	}
	// qemu's image locks, as qemu-nbd takes them: a running qemu and this
	// server do not write the same image.
	role := imagefile.LockRead
	if writable {
		role = imagefile.LockWrite
	}
	if writable || !g.forceShare {
		if err := g.locks.Lock(path, img, role); err != nil {
			img.Close()
			return nil, nil, couldNotOpen(path, err)
		}
	}
	exp := &nbd.Export{Image: img, Writable: writable}
	if writable {
		if _, ok := img.(formats.Writable); !ok {
			img.Close()
			return nil, nil, fmt.Errorf("%s: %w: format %s cannot be written (serve it with --read-only)", path, formats.ErrReadOnly, img.Format())
		}
		exp.Sync = func() error { return formats.Sync(f) }
	}
	closed := false
	closeImage := func() error {
		if closed {
			return nil
		}
		closed = true
		return img.Close()
	}
	return exp, closeImage, nil
}

// listen opens the socket and returns it with the URL clients use.
func listen(socket, bind, export string, useTLS bool) (net.Listener, string, error) {
	if socket != "" {
		if _, err := os.Lstat(socket); err == nil {
			return nil, "", fmt.Errorf("%s: already exists (remove it first)", socket)
		}
		l, err := net.Listen("unix", socket)
		if err != nil {
			return nil, "", err
		}
		return l, nbd.Address{Network: "unix", Addr: socket, Export: export, TLS: useTLS}.String(), nil
	}
	l, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, "", err
	}
	return l, nbd.Address{Network: "tcp", Addr: l.Addr().String(), Export: export, TLS: useTLS}.String(), nil
}
