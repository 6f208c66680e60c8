package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/imagefile"
	"github.com/vdiskio/vdisk/qcow2"
)

func newAmendCommand(g *globals) *cobra.Command {
	var format string
	var options []string
	var progress, force bool
	cmd := &cobra.Command{
		Use:   "amend [--object secret,...] [--image-opts] [-f fmt] [-p] [-q] [--force] -o options filename",
		Short: "Change options of an existing image (qcow2: compat, lazy_refcounts, refcount_bits, size, encrypt.* key slots)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			text := strings.Join(options, ",")
			if text == "" {
				return fmt.Errorf("Must specify options (-o)")
			}
			if text == "help" || text == "?" {
				fmt.Fprintln(cmd.OutOrStdout(), "Amend options for 'qcow2':")
				for _, k := range qcow2.AmendKeys {
					fmt.Fprintf(cmd.OutOrStdout(), "  %-22s - %s\n", k[0]+"=", k[1])
				}
				return nil
			}
			opts := splitAmendOptions(text)
			img, err := g.openAs(cmd.Context(), args[0], format, imagefile.LockResize, func(o *formats.OpenOptions) { o.Writable, o.NoBacking = true, true })
			if err != nil {
				return err
			}
			q, ok := img.(*qcow2.Image)
			if !ok {
				img.Close()
				return fmt.Errorf("Format driver '%s' does not support option amendment", img.Format())
			}
			// The secrets encrypt.* names, and the key the image opened with.
			var keys formats.OpenOptions
			if _, err := g.applyKeys(args[0], &keys); err != nil {
				img.Close()
				return err
			}
			err = q.AmendWith(cmd.Context(), opts, qcow2.AmendSecrets{Secrets: keys.Secrets, Key: keys.Key, Force: force})
			if cerr := img.Close(); err == nil {
				err = cerr
			}
			var ae *qcow2.AmendError
			if errors.As(err, &ae) && ae.Hint != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s\n%s\n", cmd.Root().Name(), ae.Msg, ae.Hint)
				return &exitError{code: 1}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVarP(&format, "format", "f", "", "image format (probed when omitted)")
	f.StringArrayVarP(&options, "options", "o", nil, "options to change, key=value[,...] (-o help lists them)")
	f.BoolVarP(&progress, "progress", "p", false, "show progress (accepted; amend is quick)")
	f.BoolVarP(&g.quiet, "quiet", "q", false, "quiet")
	f.BoolVar(&force, "force", false, "allow unsafe operations: overwrite an active LUKS key slot, erase the last one")
	return cmd
}

// splitAmendOptions parses qemu's "k=v,k2=v2" with formats' -o tokenizer
// (",," is a comma in a value; a bare key is key=on); the keys are
// qemu's amend keys, checked by qcow2's Amend in qemu's words.
func splitAmendOptions(text string) map[string]string {
	out := map[string]string{}
	for _, item := range formats.SplitOptions(text) {
		out[item.Key] = item.Value
	}
	return out
}
