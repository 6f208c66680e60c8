//go:build !unix

package clitest

import (
	"context"
	"os"
	"os/exec"
)

// limited runs bin without an address-space limit: the OS has no
// per-process one the tests can set.
func limited(ctx context.Context, _ int64, bin string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, bin, args...)
}

func maxRSS(*os.ProcessState) int64 { return 0 }
