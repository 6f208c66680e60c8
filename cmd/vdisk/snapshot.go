package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/imageinfo"
	"github.com/vdiskio/vdisk/internal/imagefile"
)

func newSnapshotCommand(g *globals) *cobra.Command {
	var format, apply, create, del string
	var list bool
	cmd := &cobra.Command{
		Use:   "snapshot [-f fmt] [-q] [-l | -a snapshot | -c snapshot | -d snapshot] filename",
		Short: "List, create, apply or delete an image's internal snapshots (qcow2)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n := 0
			for _, set := range []bool{list, apply != "", create != "", del != ""} {
				if set {
					n++
				}
			}
			if n != 1 {
				return fmt.Errorf("Cannot mix '-l', '-a', '-c', '-d'")
			}
			if list {
				return listSnapshots(g, cmd, args[0], format)
			}
			img, err := g.openAs(cmd.Context(), args[0], format, imagefile.LockWrite, func(o *formats.OpenOptions) { o.Writable, o.NoBacking = true, true })
			if err != nil {
				return err
			}
			s, ok := img.(formats.Snapshotter)
			if !ok {
				img.Close()
				return fmt.Errorf("%w: %s images have no internal snapshots", formats.ErrUnsupported, img.Format())
			}
			switch {
			case create != "":
				err = s.CreateSnapshot(create, time.Now())
				if err != nil {
					err = fmt.Errorf("Could not create snapshot '%s': %w", create, err)
				}
			case apply != "":
				err = s.ApplySnapshot(apply)
				if errors.Is(err, formats.ErrNoSnapshot) {
					err = fmt.Errorf("Could not apply snapshot '%s': Failed to load snapshot: No such file or directory", apply)
				} else if err != nil {
					err = fmt.Errorf("Could not apply snapshot '%s': %w", apply, err)
				}
			default:
				err = s.DeleteSnapshot(del)
				if errors.Is(err, formats.ErrNoSnapshot) {
					err = fmt.Errorf("Could not delete snapshot '%s': snapshot not found", del)
				} else if err != nil {
					err = fmt.Errorf("Could not delete snapshot '%s': %w", del, err)
				}
			}
			if cerr := img.Close(); err == nil && cerr != nil {
				err = cerr
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVarP(&format, "format", "f", "", "image format (probed when omitted)")
	f.BoolVarP(&list, "list", "l", false, "list the snapshots")
	f.StringVarP(&apply, "apply", "a", "", "revert the disk to a snapshot (id, else name)")
	f.StringVarP(&create, "create", "c", "", "create a snapshot of the disk's current state")
	f.StringVarP(&del, "delete", "d", "", "delete the snapshot with this name")
	f.BoolVarP(&g.quiet, "quiet", "q", false, "quiet")
	return cmd
}

// listSnapshots prints the snapshot table as qemu-img snapshot -l does.
func listSnapshots(g *globals, cmd *cobra.Command, path, format string) error {
	img, err := g.open(cmd.Context(), path, format, func(o *formats.OpenOptions) { o.NoBacking = true })
	if err != nil {
		return err
	}
	defer img.Close()
	var snaps []formats.Snapshot
	if in, ok := img.(formats.Informer); ok {
		snaps = in.Info().Snapshots
	}
	if len(snaps) > 0 {
		imageinfo.WriteSnapshots(cmd.OutOrStdout(), imageinfo.Snapshots(snaps))
	}
	return nil
}
