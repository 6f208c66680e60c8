//go:build unix

package clitest

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
)

// limited runs bin through the shell's ulimit -v, which sets RLIMIT_AS for
// the child only.
func limited(ctx context.Context, limitBytes int64, bin string, args ...string) *exec.Cmd {
	script := `ulimit -v ` + strconv.FormatInt(limitBytes>>10, 10) + ` && exec "$0" "$@"`
	cmd := exec.CommandContext(ctx, "/bin/sh", append([]string{"-c", script, bin}, args...)...)
	cmd.Env = append(os.Environ(), "GOTRACEBACK=single")
	return cmd
}

// maxRSS is the child's peak resident set (ru_maxrss: KiB on Linux and
// FreeBSD, bytes on macOS).
func maxRSS(ps *os.ProcessState) int64 {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0
	}
	if runtime.GOOS == "darwin" {
		return int64(ru.Maxrss)
	}
	return int64(ru.Maxrss) << 10
}
