package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/formats"
)

// Hints for the mistakes newcomers make most: each turns an error message
// (or a command line that works but likely not as meant) into the same
// line with the fix appended. Called as qemu-img, vdisk prints qemu's words
// only, so none of this applies there.

// hintRule recognises one mistake in an error message and says the fix.
type hintRule struct {
	match *regexp.Regexp
	fix   func(m []string) string
}

var hintRules = []hintRule{
	{regexp.MustCompile(`format "([^"]+)" was requested but the content is (\w+)`), func(m []string) string {
		return fmt.Sprintf("drop -f to open it as %s, or add --force-format to read it as %s", m[2], m[1])
	}},
	{regexp.MustCompile(`unknown option "([^"]+)"`), func(m []string) string {
		if near := nearest(m[1], optionNames()); near != "" {
			return "did you mean " + near + "?"
		}
		return ""
	}},
	{regexp.MustCompile(`unknown format: "([^"]+)"`), func(m []string) string {
		if near := nearest(m[1], formatNames()); near != "" {
			return "did you mean " + near + "?"
		}
		return ""
	}},
	{regexp.MustCompile(`^([^:]+): is a directory`), func(m []string) string {
		return fmt.Sprintf("the output is a file: name one inside it, e.g. %s", filepath.Join(m[1], "disk.img"))
	}},
	{regexp.MustCompile(`Expecting one image file name and an output file name`), func([]string) string {
		return "usage: vdisk convert [-O fmt] INPUT OUTPUT"
	}},
	{regexp.MustCompile(`image creation needs a size parameter`), func([]string) string {
		return "add a size such as 20G after the file name"
	}},
	{regexp.MustCompile(`(?i)\bno key\b|needs a key|encrypted.*(secret|key)`), func([]string) string {
		return "give the key with --object secret,id=sec0,file=KEYFILE and --key-secret sec0"
	}},
}

// unknownCommand is cobra's (and identity.go's) refusal of a subcommand.
var unknownCommand = regexp.MustCompile(`unknown command "([^"]+)"`)

// hint appends the fix for a recognised mistake to msg; root's
// subcommands are the candidates for a mistyped command.
func hint(msg string, root *cobra.Command) string {
	if m := unknownCommand.FindStringSubmatch(msg); m != nil {
		var names []string
		for _, c := range root.Commands() {
			names = append(names, c.Name())
		}
		if near := nearest(m[1], names); near != "" {
			return msg + "; did you mean " + root.Name() + " " + near + "?"
		}
		return msg
	}
	for _, r := range hintRules {
		if m := r.match.FindStringSubmatch(msg); m != nil {
			if fix := r.fix(m); fix != "" && !strings.Contains(msg, fix) {
				return msg + "; " + fix
			}
		}
	}
	return msg
}

// bareNumber is a size written without a unit.
var bareNumber = regexp.MustCompile(`^[0-9]+$`)

// warnLikelyMistakes notes command lines that run but are probably not what
// was meant: convert without -O to a file named like another format, and a
// size without a unit so small it is surely not bytes.
func warnLikelyMistakes(cmd *cobra.Command, args []string) {
	if cmd.Root().Use == "qemu-img" {
		return
	}
	warn := func(s string) { fmt.Fprintln(cmd.ErrOrStderr(), "vdisk: note: "+s) }
	switch cmd.Name() {
	case "convert":
		if len(args) == 2 && !cmd.Flags().Changed("output-format") {
			ext := strings.TrimPrefix(strings.ToLower(filepath.Ext(args[1])), ".")
			if d, err := formats.Lookup(ext); err == nil && d.Name != "raw" {
				warn(fmt.Sprintf("no -O given: writing raw into %s; for a %s image add -O %s", args[1], d.Name, d.Name))
			}
		}
	case "create":
		if len(args) == 2 && bareNumber.MatchString(args[1]) && len(args[1]) <= 5 {
			warn(fmt.Sprintf("size %s has no unit, so it is %s bytes; for gigabytes write %sG", args[1], args[1], args[1]))
		}
	}
}

func optionNames() []string {
	var names []string
	for _, d := range formats.Drivers() {
		for _, o := range d.CreateOptions {
			if !slices.Contains(names, o.Name) {
				names = append(names, o.Name)
			}
		}
	}
	return names
}

func formatNames() []string {
	var names []string
	for _, d := range formats.Drivers() {
		names = append(names, d.Name)
		names = append(names, d.Aliases...)
	}
	return names
}

// nearest is the candidate within edit distance 2 of s (the closest, the
// first on ties), or "".
func nearest(s string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(s), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b, where deleting an
// underscore or a hyphen costs nothing (clustersize ~ cluster_size).
func editDistance(a, b string) int {
	strip := func(s string) string { return strings.NewReplacer("_", "", "-", "").Replace(s) }
	a, b = strip(a), strip(b)
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
