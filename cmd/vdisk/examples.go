package main

import (
	"strings"

	"github.com/spf13/cobra"
)

// examples are the example lines each subcommand's --help shows (commands
// that set their own Example keep it). Keyed by the command path below the
// root ("iso create").
var examples = map[string]string{
	"info":        "  vdisk info disk.qcow2\n  vdisk info --output=json --backing-chain overlay.qcow2",
	"convert":     "  vdisk convert -p -O qcow2 disk.vmdk disk.qcow2\n  vdisk convert -O vpc -o subformat=fixed,force_size=on,azure=on disk.raw azure.vhd",
	"create":      "  vdisk create -f qcow2 disk.qcow2 20G\n  vdisk create -f qcow2 -b base.qcow2 -F qcow2 overlay.qcow2",
	"compare":     "  vdisk compare disk.vmdk disk.qcow2",
	"map":         "  vdisk map --output=json disk.qcow2\n  vdisk map --visual disk.qcow2",
	"measure":     "  vdisk measure -O qcow2 disk.raw\n  vdisk measure -O qcow2 --size 100G",
	"check":       "  vdisk check disk.qcow2\n  vdisk check -r leaks disk.qcow2",
	"resize":      "  vdisk resize disk.qcow2 +10G\n  vdisk resize --shrink disk.raw 8G",
	"dd":          "  vdisk dd -O raw bs=1M count=64 if=disk.qcow2 of=head.raw",
	"rebase":      "  vdisk rebase -b new-base.qcow2 -F qcow2 overlay.qcow2\n  vdisk rebase -u -b moved/base.qcow2 overlay.qcow2",
	"amend":       "  vdisk amend -o compat=0.10 disk.qcow2\n  vdisk amend -o refcount_bits=64,lazy_refcounts=on disk.qcow2",
	"bitmap":      "  vdisk bitmap --add disk.qcow2 backup-1\n  vdisk bitmap --merge backup-1 -b other.qcow2 --clear disk.qcow2 backup-2",
	"commit":      "  vdisk commit overlay.qcow2\n  vdisk commit -d -b base.qcow2 top.qcow2",
	"snapshot":    "  vdisk snapshot -l disk.qcow2\n  vdisk snapshot -c before-upgrade disk.qcow2\n  vdisk snapshot -a before-upgrade disk.qcow2\n  vdisk snapshot -d before-upgrade disk.qcow2",
	"checksum":    "  vdisk checksum disk.qcow2\n  vdisk checksum --linear -a sha256 disk.vmdk",
	"verify":      "  vdisk verify --hash-log copy.log copy.qcow2\n  vdisk verify evidence.E01",
	"rescue":      "  vdisk rescue --mapfile disk.map /dev/sdb rescued.qcow2 -O qcow2",
	"serve":       "  vdisk serve --socket /tmp/disk.sock --read-only disk.vmdk",
	"iso":         "  vdisk iso ls seed.iso\n  vdisk iso create -o seed.iso --label cidata --joliet --rock-ridge seed/",
	"iso ls":      "  vdisk iso ls install.iso /boot",
	"iso create":  "  vdisk iso create -o seed.iso --label cidata --joliet --rock-ridge seed/",
	"iso extract": "  vdisk iso extract install.iso /boot ./boot",
}

// applyNewcomerAids gives every subcommand an example in its help (from
// examples when it has none) and notes likely mistakes before convert and
// create run.
func applyNewcomerAids(root *cobra.Command) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			path := strings.TrimPrefix(sub.CommandPath(), root.CommandPath()+" ")
			if sub.Example == "" {
				sub.Example = examples[path]
			}
			if (path == "convert" || path == "create") && sub.PreRun == nil {
				sub.PreRun = warnLikelyMistakes
			}
			walk(sub)
		}
	}
	walk(root)
}
