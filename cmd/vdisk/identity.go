package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/formats"
)

// qemuVersion is the qemu-img version vdisk answers as when called
// qemu-img: the release whose subcommands, flags, JSON and messages it
// follows (qemu-img.md). Clients check it against their minimums with
// regexes like `qemu-img version (\d+)\.(\d+)\.(\d+)`.
const qemuVersion = "7.2.0"

// progName is the name the command answers to: "qemu-img" when called
// through a link of that name (ln -s vdisk qemu-img), else "vdisk".
func progName(argv0 string) string {
	base := strings.TrimSuffix(filepath.Base(argv0), ".exe")
	if base == "qemu-img" {
		return base
	}
	return "vdisk"
}

// versionText is the --version / -V output.
func versionText(prog string) string {
	if prog == "qemu-img" {
		return fmt.Sprintf("qemu-img version %s (vdisk %s)\nvdisk answers as qemu-img; it is not QEMU.\n", qemuVersion, version)
	}
	return fmt.Sprintf("vdisk version %s (qemu-img %s compatible)\n", version, qemuVersion)
}

// supportedFormats is --help's "Supported formats:" line, which clients
// grep to learn what the tool can open.
func supportedFormats() string {
	var names []string
	for _, d := range formats.Drivers() {
		names = append(names, d.Name)
		names = append(names, d.Aliases...)
	}
	return "Supported formats: " + strings.Join(names, " ")
}

// setIdentity gives root its name, its version flags (--version and
// qemu's -V), the formats line of --help, and bare-invocation behaviour:
// usage and exit 1, as qemu-img exits 1 with no command.
func setIdentity(root *cobra.Command, prog string) {
	root.Use = prog
	root.Flags().BoolP("version", "V", false, "print the version and exit")
	root.SetVersionTemplate(versionText(prog))
	root.SetHelpTemplate(root.HelpTemplate() + supportedFormats() + "\n")
	root.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			if prog == "qemu-img" {
				return fmt.Errorf("Command not found: %s", args[0])
			}
			return fmt.Errorf("unknown command %q; see '%s --help'", args[0], prog)
		}
		return nil
	}
	root.RunE = func(cmd *cobra.Command, args []string) error {
		if prog == "qemu-img" {
			return fmt.Errorf("Not enough arguments; try 'qemu-img --help' for more information")
		}
		cmd.SetOut(cmd.ErrOrStderr())
		cmd.Usage()
		return exitWith(1, nil)
	}
}
