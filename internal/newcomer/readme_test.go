// Package newcomer tests the README as a newcomer uses it: on a fresh clone,
// the main job and the "then look" commands run exactly as the README writes
// them and print what it shows; the test command is the one CI runs.
package newcomer

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// readme holds the commands parsed from README.md.
type readme struct {
	mainJob, tests string
	// tries are the console block's commands, each with the lines the README
	// shows as its output.
	tries []try
}

type try struct {
	command string
	output  []string
}

// parseReadme takes the first sh block after "## Try it" (its two commands)
// and the console block after it ("$ " lines and their output).
func parseReadme(t *testing.T, text string) readme {
	var r readme
	section := strings.Index(text, "## Try it")
	if section < 0 {
		t.Fatal("README has no '## Try it' section")
	}
	sh := fencedBlock(t, text[section:], "```sh\n")
	var cmds []string
	for _, line := range strings.Split(sh, "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			cmd, _, _ := strings.Cut(line, " # ")
			cmds = append(cmds, strings.TrimSpace(cmd))
		}
	}
	if len(cmds) != 2 {
		t.Fatalf("the Try it block has %d commands, want 2 (main job, tests): %q", len(cmds), cmds)
	}
	r.mainJob, r.tests = cmds[0], cmds[1]
	console := fencedBlock(t, text[section:], "```console\n")
	for _, line := range strings.Split(console, "\n") {
		switch {
		case strings.HasPrefix(line, "$ "):
			r.tries = append(r.tries, try{command: line[2:]})
		case line != "" && len(r.tries) > 0:
			last := &r.tries[len(r.tries)-1]
			last.output = append(last.output, line)
		}
	}
	if len(r.tries) < 3 {
		t.Fatalf("the README shows %d commands to try next, want at least 3", len(r.tries))
	}
	return r
}

func fencedBlock(t *testing.T, text, fence string) string {
	start := strings.Index(text, fence)
	if start < 0 {
		t.Fatalf("README has no %q block", strings.TrimSpace(fence))
	}
	body := text[start+len(fence):]
	end := strings.Index(body, "```")
	if end < 0 {
		t.Fatalf("unterminated %q block", strings.TrimSpace(fence))
	}
	return body[:end]
}

// clone makes a fresh clone of the repository's committed state.
func clone(t *testing.T) string {
	root := qemutest.RepoRoot(t)
	git, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git not found")
	}
	if _, err := os.Stat(filepath.Join(root, ".git")); err != nil {
		t.Skipf("%s is not a git checkout", root)
	}
	dir := filepath.Join(t.TempDir(), "vdisk")
	if out, err := exec.Command(git, "clone", "-q", root, dir).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	return dir
}

func shell(t *testing.T, dir, command string) string {
	cmd := exec.Command("sh", "-c", command)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", command, err, out)
	}
	return string(out)
}

func TestReadmeOnFreshClone(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the command in a fresh clone")
	}
	root := qemutest.RepoRoot(t)
	text, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	r := parseReadme(t, string(text))
	dir := clone(t)

	// The main job converts the example; qemu-img says the result holds the
	// same disk.
	out := shell(t, dir, r.mainJob)
	if !strings.Contains(out, "(100.00/100%)") {
		t.Errorf("the main job printed no completed progress:\n%s", out)
	}
	fields := strings.Fields(r.mainJob)
	target := fields[len(fields)-1]
	qemutest.RequireSame(t, "qcow2", filepath.Join(dir, "testdata/example.qcow2"), "raw", target)

	for _, tr := range r.tries {
		got := shell(t, dir, tr.command)
		rest := got
		for _, want := range tr.output {
			i := strings.Index(rest, want+"\n")
			if i < 0 {
				t.Errorf("%s: output lacks (in order) the README's line %q:\n%s", tr.command, want, got)
				break
			}
			rest = rest[i+len(want):]
		}
	}

	// The README's test command is the one CI runs (CI adds only a timeout).
	ci, err := os.ReadFile(filepath.Join(root, ".ci/run"))
	if err != nil {
		t.Fatal(err)
	}
	if !ciRuns(string(ci), r.tests) {
		t.Errorf(".ci/run does not run the README's test command %q", r.tests)
	}
}

// ciRuns reports whether a line of script runs command, allowing extra
// flags (such as -timeout 20m) before its last argument.
func ciRuns(script, command string) bool {
	words := strings.Fields(command)
	sc := bufio.NewScanner(strings.NewReader(script))
	for sc.Scan() {
		line := strings.Fields(sc.Text())
		if len(line) < len(words) || !strings.HasPrefix(strings.Join(line, " "), strings.Join(words[:len(words)-1], " ")) {
			continue
		}
		if line[len(line)-1] == words[len(words)-1] {
			return true
		}
	}
	return false
}
