package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// Every subcommand's help shows an example, and each example line is a
// command line the subcommand accepts (its flags parse).
func TestEveryCommandHasAnExample(t *testing.T) {
	t.Parallel()
	root, _ := newRootCommand(io.Discard, io.Discard)
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Name() == "help" || sub.Name() == "completion" || sub.Hidden {
				continue
			}
			if strings.TrimSpace(sub.Example) == "" {
				t.Errorf("%s has no example", sub.CommandPath())
			}
			for _, line := range strings.Split(sub.Example, "\n") {
				line, _, _ = strings.Cut(line, "|") // a shell pipeline after the command
				words := strings.Fields(line)
				if len(words) == 0 || words[0] != "vdisk" {
					continue
				}
				prefix := strings.Fields(sub.CommandPath())
				if len(words) < len(prefix) || strings.Join(words[:len(prefix)], " ") != sub.CommandPath() {
					t.Errorf("%s: example %q runs another command", sub.CommandPath(), line)
					continue
				}
				fresh, _ := newRootCommand(io.Discard, io.Discard)
				target, rest, err := fresh.Find(words[1:])
				if err == nil {
					err = target.ParseFlags(rest)
				}
				if err != nil {
					t.Errorf("%s: example %q: %v", sub.CommandPath(), line, err)
				}
			}
			walk(sub)
		}
	}
	walk(root)
}

// The most common mistakes end in one line that says the fix.
func TestMistakesSuggestTheFix(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	img := filepath.Join(dir, "a.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", img, "64M")
	os.Mkdir(filepath.Join(dir, "outdir"), 0o755)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"convert", img, filepath.Join(dir, "b.qcow2")}, 0, "add -O qcow2"},
		{[]string{"info", "-f", "raw", img}, 1, "drop -f to open it as qcow2, or add --force-format"},
		{[]string{"convert", "-O", "qcow2", img, filepath.Join(dir, "outdir")}, 1, "name one inside it"},
		{[]string{"create", "-f", "qcow2", "-o", "clustersize=64k", filepath.Join(dir, "c.qcow2"), "1G"}, 1, "did you mean cluster_size?"},
		{[]string{"create", "-f", "qcow2", filepath.Join(dir, "e.qcow2"), "10"}, 0, "for gigabytes write 10G"},
		{[]string{"convert", "-O", "qcow3", img, filepath.Join(dir, "f")}, 1, "did you mean qcow2?"},
		{[]string{"convert", img}, 1, "usage: vdisk convert"},
		{[]string{"conver", img, "x"}, 1, "did you mean vdisk convert?"},
		{[]string{"create", "-f", "qcow2", filepath.Join(dir, "g.qcow2")}, 1, "add a size such as 20G"},
		{[]string{"resize", img, "32M"}, 1, "--shrink"},
	} {
		_, errs, code := vdisk(t, c.args...)
		if code != c.code || !strings.Contains(errs, c.want) || strings.Count(strings.TrimSpace(errs), "\n") > 1 {
			t.Errorf("vdisk %s: exit %d, stderr %q; want exit %d and %q", strings.Join(c.args, " "), code, errs, c.code, c.want)
		}
	}
}
