package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/imagefile"
	"github.com/vdiskio/vdisk/qcow2"
)

// bitmapAction is one operation of qemu-img bitmap, done in command-line
// order.
type bitmapAction struct {
	op  string // add, remove, clear, enable, disable, merge
	src string // merge: the source bitmap
}

// bitmapArgs is a parsed qemu-img bitmap command line.
type bitmapArgs struct {
	actions                 []bitmapAction
	format, srcFile, srcFmt string
	granularity             int64
	file, bitmap            string
}

func newBitmapCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bitmap (--merge SOURCE | --add | --remove | --clear | --enable | --disable)... [-b source_file [-F source_fmt]] [-g granularity] [-f fmt] filename bitmap",
		Short: "Add, remove, clear, enable, disable or merge qcow2 persistent dirty bitmaps",
		// The operations run in command-line order, so the flags are
		// parsed here rather than by cobra.
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, a := range args {
				if a == "-h" || a == "--help" {
					return cmd.Help()
				}
			}
			ba, err := parseBitmapArgs(args)
			if err != nil {
				return err
			}
			return runBitmap(g, cmd, ba)
		},
	}
	return cmd
}

func parseBitmapArgs(args []string) (bitmapArgs, error) {
	var ba bitmapArgs
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		val := func() (string, error) {
			if k, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(k, "--") {
				return v, nil
			}
			if i+1 >= len(args) {
				return "", fmt.Errorf("option '%s' requires an argument", a)
			}
			i++
			return args[i], nil
		}
		name, _, _ := strings.Cut(a, "=")
		var err error
		var v string
		switch name {
		case "--add", "--remove", "--clear", "--enable", "--disable":
			ba.actions = append(ba.actions, bitmapAction{op: strings.TrimPrefix(name, "--")})
		case "--merge":
			if v, err = val(); err == nil {
				ba.actions = append(ba.actions, bitmapAction{op: "merge", src: v})
			}
		case "-g":
			if v, err = val(); err == nil {
				n, perr := formats.ParseSize(v)
				if perr != nil || n <= 0 {
					return ba, fmt.Errorf("Invalid granularity specified")
				}
				ba.granularity = n
			}
		case "-b":
			ba.srcFile, err = val()
		case "-F":
			ba.srcFmt, err = val()
		case "-f":
			ba.format, err = val()
		case "-q", "--quiet", "-U", "--force-share":
		case "--object", "--image-opts":
			return ba, fmt.Errorf("%w: bitmap %s", formats.ErrUnsupported, name)
		default:
			if strings.HasPrefix(a, "-") && a != "-" {
				return ba, fmt.Errorf("unrecognized option '%s'", a)
			}
			pos = append(pos, a)
		}
		if err != nil {
			return ba, err
		}
	}
	if len(ba.actions) == 0 {
		return ba, fmt.Errorf("Need at least one of --add, --remove, --clear, --enable, --disable, or --merge")
	}
	if ba.granularity != 0 && !hasAction(ba.actions, "add") {
		return ba, fmt.Errorf("granularity only supported with --add")
	}
	if ba.srcFmt != "" && ba.srcFile == "" {
		return ba, fmt.Errorf("-F only supported with -b")
	}
	if ba.srcFile != "" && !hasAction(ba.actions, "merge") {
		return ba, fmt.Errorf("Merge bitmap source file only supported with --merge")
	}
	if len(pos) != 2 {
		return ba, fmt.Errorf("Expecting filename and bitmap name")
	}
	ba.file, ba.bitmap = pos[0], pos[1]
	return ba, nil
}

func hasAction(acts []bitmapAction, op string) bool {
	for _, a := range acts {
		if a.op == op {
			return true
		}
	}
	return false
}

func runBitmap(g *globals, cmd *cobra.Command, ba bitmapArgs) error {
	ctx := cmd.Context()
	img, err := g.openAs(ctx, ba.file, ba.format, imagefile.LockWrite, func(o *formats.OpenOptions) { o.Writable, o.NoBacking = true, true })
	if err != nil {
		return err
	}
	q, ok := img.(*qcow2.Image)
	if !ok {
		img.Close()
		return fmt.Errorf("Format driver '%s' does not support bitmaps", img.Format())
	}
	err = doBitmapActions(g, cmd, q, ba)
	if cerr := img.Close(); err == nil {
		err = cerr
	}
	return err
}

func doBitmapActions(g *globals, cmd *cobra.Command, q *qcow2.Image, ba bitmapArgs) error {
	for _, act := range ba.actions {
		var err error
		switch act.op {
		case "add":
			err = q.AddBitmap(ba.bitmap, ba.granularity, true)
		case "remove":
			err = q.RemoveBitmap(ba.bitmap)
		case "clear":
			err = q.ClearBitmap(ba.bitmap)
		case "enable", "disable":
			err = q.EnableBitmap(ba.bitmap, act.op == "enable")
		case "merge":
			err = mergeFrom(g, cmd, q, ba, act.src)
		}
		if err != nil {
			return fmt.Errorf("Operation %s on bitmap %s failed: %w", act.op, ba.bitmap, err)
		}
	}
	return nil
}

// mergeFrom merges bitmap src of the -b image (or of q) into ba.bitmap.
func mergeFrom(g *globals, cmd *cobra.Command, q *qcow2.Image, ba bitmapArgs, src string) error {
	from, size := q, q.Size()
	if ba.srcFile != "" {
		img, err := g.open(cmd.Context(), ba.srcFile, ba.srcFmt, func(o *formats.OpenOptions) { o.NoBacking = true })
		if err != nil {
			return err
		}
		defer img.Close()
		sq, ok := img.(*qcow2.Image)
		if !ok {
			return fmt.Errorf("Dirty bitmap '%s' not found", src)
		}
		from, size = sq, sq.Size()
	}
	list, err := from.ReadBitmaps()
	if err != nil {
		return err
	}
	for _, b := range list {
		if b.Name == src {
			return q.MergeBitmap(ba.bitmap, b, size)
		}
	}
	return fmt.Errorf("Dirty bitmap '%s' not found", src)
}
