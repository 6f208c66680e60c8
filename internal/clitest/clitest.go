// Package clitest runs the vdisk command in a child process for tests that
// need a real process: hostile inputs run under an address-space limit and a
// time bound, so that a regression shows as an out-of-memory death or a
// timeout instead of a slow or swapping test machine.
package clitest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Result is what one run of the command did.
type Result struct {
	Stdout, Stderr string
	Code           int
	Elapsed        time.Duration
	CPU            time.Duration // user and system time: what the run cost, whatever the machine's load
	MaxRSSBytes    int64         // peak resident memory, where the OS reports it (else 0)
}

// Binary builds cmd/vdisk into a temporary directory of t and returns its
// path.
func Binary(t testing.TB) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build vdisk: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "vdisk")
	if runtime.GOOS == "windows" {
		bin += ".exe"
	}
	// Without cgo, threads are Go's own (small stacks), not glibc's 8 MiB
	// ones that an address-space limit soon runs out of.
	cmd := exec.Command(goTool, "build", "-o", bin, "github.com/vdiskio/vdisk/cmd/vdisk")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("building vdisk: %v\n%s", err, out)
	}
	return bin
}

// Command is bin with args as an *exec.Cmd whose address space is limited
// to limitBytes (where the OS allows it), killed when ctx is done: for
// tests that talk to the child while it runs.
func Command(ctx context.Context, limitBytes int64, bin string, args ...string) *exec.Cmd {
	return limited(ctx, limitBytes, bin, args...)
}

// Run runs bin with args, its address space limited to limitBytes (where
// the OS allows it) and killed after timeout.
func Run(t testing.TB, bin string, limitBytes int64, timeout time.Duration, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := limited(ctx, limitBytes, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	res := Result{Stdout: stdout.String(), Stderr: stderr.String(), Elapsed: time.Since(start)}
	if ctx.Err() != nil {
		t.Fatalf("vdisk %s: still running after %v (killed)", strings.Join(args, " "), timeout)
	}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.Code = ee.ExitCode()
	case err != nil:
		t.Fatalf("vdisk %s: %v", strings.Join(args, " "), err)
	}
	res.MaxRSSBytes = maxRSS(cmd.ProcessState)
	res.CPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return res
}

// RequireCleanError fails t unless res is exit 1 with one line on stderr
// starting "vdisk: " and containing every string of wants, and no runtime
// crash (out of memory, panic) anywhere.
func RequireCleanError(t testing.TB, res Result, wants ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(res.Stderr, "\n"), "\n")
	if res.Code != 1 || len(lines) != 1 || !strings.HasPrefix(res.Stderr, "vdisk: ") {
		t.Fatalf("exit %d, stderr (%d lines, %d bytes) %.600q: want exit 1 and one line", res.Code, len(lines), len(res.Stderr), res.Stderr)
	}
	for _, w := range wants {
		if !strings.Contains(res.Stderr, w) {
			t.Errorf("stderr %q does not say %q", res.Stderr, w)
		}
	}
}
