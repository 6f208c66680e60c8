// Command testreport runs `go test -json` with the given arguments and prints
// what go test prints (a line per package, the output of failing tests), then
// says what could not run: every skipped test grouped by its reason (a
// missing oracle tool, an absent corpus, a machine without loop devices...),
// and a closing count line "tests: N passed, N failed, N skipped".
//
//	go run ./internal/testreport ./...
//	go run ./internal/testreport -race ./convert/...
//
// Its exit code is go test's.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
)

// event is one line of test2json output.
type event struct {
	Action     string
	Package    string
	ImportPath string // build-output events
	Test       string
	Elapsed    float64
	Output     string
}

// report accumulates the run.
type report struct {
	out                  io.Writer
	passed, failed, skip int
	testOutput           map[string][]string // package/test -> output lines
	pkgOutput            map[string][]string // package-level and build output
	pkgTests, pkgSkipped map[string]int
	skipped              map[string][]string // reason -> package.Test names
}

func main() {
	args := append([]string{"test", "-json"}, os.Args[1:]...)
	cmd := exec.Command("go", args...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(2)
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(2)
	}
	r := newReport(os.Stdout)
	r.read(stdout)
	err = cmd.Wait()
	r.summary()
	if exit, ok := err.(*exec.ExitError); ok {
		os.Exit(exit.ExitCode())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(2)
	}
}

func newReport(out io.Writer) *report {
	return &report{out: out, testOutput: map[string][]string{}, pkgOutput: map[string][]string{},
		pkgTests: map[string]int{}, pkgSkipped: map[string]int{}, skipped: map[string][]string{}}
}

func (r *report) read(in io.Reader) {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			fmt.Fprintln(r.out, sc.Text()) // not JSON: pass it on
			continue
		}
		r.handle(e)
	}
}

func (r *report) handle(e event) {
	pkg := e.Package
	if pkg == "" {
		pkg = e.ImportPath
	}
	key := pkg + "." + e.Test
	switch {
	case e.Action == "output" || e.Action == "build-output":
		if e.Test != "" {
			r.testOutput[key] = append(r.testOutput[key], e.Output)
		} else {
			r.pkgOutput[pkg] = append(r.pkgOutput[pkg], e.Output)
		}
	case e.Test != "" && e.Action == "pass":
		r.passed++
		r.pkgTests[pkg]++
		delete(r.testOutput, key)
	case e.Test != "" && e.Action == "skip":
		r.skip++
		r.pkgTests[pkg]++
		r.pkgSkipped[pkg]++
		reason := skipReason(r.testOutput[key])
		r.skipped[reason] = append(r.skipped[reason], strings.TrimPrefix(pkg, modulePrefix(pkg))+"."+e.Test)
		delete(r.testOutput, key)
	case e.Test != "" && e.Action == "fail":
		r.failed++
		r.pkgTests[pkg]++
		for _, line := range r.testOutput[key] {
			fmt.Fprint(r.out, line)
		}
		delete(r.testOutput, key)
	case e.Test == "" && (e.Action == "pass" || e.Action == "fail" || e.Action == "skip"):
		r.packageDone(pkg, e)
	}
}

// packageDone prints go test's line for a package.
func (r *report) packageDone(pkg string, e event) {
	switch e.Action {
	case "fail":
		for _, line := range r.pkgOutput[pkg] {
			if !strings.HasPrefix(line, "ok ") && !strings.HasPrefix(line, "PASS") {
				fmt.Fprint(r.out, line)
			}
		}
		fmt.Fprintf(r.out, "FAIL\t%s\t%.3fs\n", pkg, e.Elapsed)
	case "skip":
		fmt.Fprintf(r.out, "?   \t%s\t[no test files]\n", pkg)
	default:
		extra := ""
		if n := r.pkgSkipped[pkg]; n > 0 {
			extra = fmt.Sprintf("\t(%d tests, %d skipped)", r.pkgTests[pkg], n)
		}
		fmt.Fprintf(r.out, "ok  \t%s\t%.3fs%s\n", pkg, e.Elapsed, extra)
	}
	delete(r.pkgOutput, pkg)
}

// fileLine is the "name_test.go:123: " prefix testing puts before messages.
var fileLine = regexp.MustCompile(`^\s*[\w./-]+\.go:\d+: `)

// skipReason is the message a skipped test gave (its last logged line
// before "--- SKIP"), without the file:line prefix and temporary paths.
func skipReason(lines []string) string {
	reason := ""
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		reason = fileLine.ReplaceAllString(l, "")
	}
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return "(no reason given)"
	}
	return tempPath.ReplaceAllString(reason, "$$TMP")
}

var tempPath = regexp.MustCompile(`/tmp/[^\s:'"]+`)

// modulePrefix is the module path before a package's own path.
func modulePrefix(pkg string) string {
	const mod = "github.com/vdiskio/vdisk/"
	if strings.HasPrefix(pkg, mod) {
		return mod
	}
	return ""
}

// summary lists what did not run, grouped by reason, then the counts.
func (r *report) summary() {
	if len(r.skipped) > 0 {
		fmt.Fprintf(r.out, "\nWhat did not run (%d skipped tests, by reason):\n", r.skip)
		reasons := make([]string, 0, len(r.skipped))
		for reason := range r.skipped {
			reasons = append(reasons, reason)
		}
		slices.SortFunc(reasons, func(a, b string) int { return len(r.skipped[b]) - len(r.skipped[a]) })
		for _, reason := range reasons {
			tests := r.skipped[reason]
			shown := tests
			if len(shown) > 3 {
				shown = shown[:3]
			}
			more := ""
			if len(tests) > len(shown) {
				more = fmt.Sprintf(", and %d more", len(tests)-len(shown))
			}
			fmt.Fprintf(r.out, "  %4d  %s\n        e.g. %s%s\n", len(tests), reason, strings.Join(shown, ", "), more)
		}
		fmt.Fprintln(r.out, "Install the oracle tools with the apt-get line in .ci/run (packages in .ci/apt.d/), and set VDISK_REQUIRE_QEMU=1 to make a missing one fail.")
	}
	fmt.Fprintf(r.out, "\ntests: %d passed, %d failed, %d skipped\n", r.passed, r.failed, r.skip)
}
