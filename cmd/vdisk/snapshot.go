package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/imageinfo"
)

func newSnapshotCommand(g *globals) *cobra.Command {
	var format, apply, create, del string
	var list bool
	cmd := &cobra.Command{
		Use:   "snapshot [-f fmt] [-l | -a snapshot | -c snapshot | -d snapshot] filename",
		Short: "List an image's internal snapshots (qcow2)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			for flag, name := range map[string]string{"-a": apply, "-c": create, "-d": del} {
				if name != "" {
					return fmt.Errorf("%w: snapshot %s (applying, creating and deleting snapshots is not implemented yet; -l lists them)", formats.ErrUnsupported, flag)
				}
			}
			if !list {
				return fmt.Errorf("snapshot needs one of -l, -a, -c or -d")
			}
			img, err := g.open(cmd.Context(), args[0], format, func(o *formats.OpenOptions) { o.NoBacking = true })
			if err != nil {
				return err
			}
			defer img.Close()
			var snaps []formats.Snapshot
			if in, ok := img.(formats.Informer); ok {
				snaps = in.Info().Snapshots
			}
			if len(snaps) > 0 {
				printSnapshots(cmd.OutOrStdout(), imageinfo.Snapshots(snaps))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&format, "format", "f", "", "image format (probed when omitted)")
	f.BoolVarP(&list, "list", "l", false, "list the snapshots")
	f.StringVarP(&apply, "apply", "a", "", "apply a snapshot (not implemented)")
	f.StringVarP(&create, "create", "c", "", "create a snapshot (not implemented)")
	f.StringVarP(&del, "delete", "d", "", "delete a snapshot (not implemented)")
	return cmd
}
