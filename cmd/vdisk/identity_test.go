package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// asQemuImg runs this test binary, as the vdisk command, through a link
// named qemu-img.
func asQemuImg(t *testing.T, link string, args ...string) qemutest.Result {
	t.Helper()
	cmd := exec.Command(link, args...)
	cmd.Env = append(os.Environ(), "VDISK_TEST_MAIN=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := qemutest.Result{Stdout: out.String(), Stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestCalledAsQemuImg: through a link named qemu-img, vdisk's version line
// passes the version regexes clients use (the same regex read qemu-img's
// own), --help has the Supported formats line, and errors carry the
// qemu-img: prefix and qemu's "Could not open 'FILE':" phrase, as the real
// qemu-img's do.
func TestCalledAsQemuImg(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	link := filepath.Join(dir, "qemu-img")
	if err := os.Symlink(exe, link); err != nil {
		t.Fatal(err)
	}
	versionRE := regexp.MustCompile(`^qemu-img version (\d+)\.(\d+)\.(\d+)`)
	real := qemutest.Exec(t, "qemu-img", "--version")
	if !versionRE.MatchString(real.Stdout) {
		t.Fatalf("the regex does not read qemu-img's own version line %q", real.Stdout)
	}
	for _, flag := range []string{"--version", "-V"} {
		r := asQemuImg(t, link, flag)
		m := versionRE.FindStringSubmatch(r.Stdout)
		if r.Code != 0 || m == nil || m[1] != "7" || !strings.Contains(strings.SplitN(r.Stdout, "\n", 2)[0], "(vdisk ") {
			t.Errorf("qemu-img %s: exit %d, %q", flag, r.Code, r.Stdout)
		}
	}
	help := asQemuImg(t, link, "--help")
	if help.Code != 0 || !regexp.MustCompile(`(?m)^Supported formats: .*\bqcow2\b.*\bvpc\b`).MatchString(help.Stdout) {
		t.Errorf("qemu-img --help: exit %d, no Supported formats line in %q", help.Code, help.Stdout)
	}
	missing := filepath.Join(dir, "missing.qcow2")
	for _, args := range [][]string{{"info", missing}, {"convert", "-O", "raw", missing, filepath.Join(dir, "out.raw")}, {"map", missing}} {
		want := qemutest.Exec(t, "qemu-img", args...)
		got := asQemuImg(t, link, args...)
		prefix := "qemu-img: Could not open '" + missing + "': "
		if got.Code != want.Code || !strings.HasPrefix(got.Stderr, prefix) || !strings.HasPrefix(want.Stderr, prefix) {
			t.Errorf("qemu-img %s: vdisk exit %d %q; qemu-img exit %d %q; want both to start %q",
				strings.Join(args, " "), got.Code, got.Stderr, want.Code, want.Stderr, prefix)
		}
	}
	for _, args := range [][]string{{}, {"frobnicate"}} {
		want := qemutest.Exec(t, "qemu-img", args...)
		got := asQemuImg(t, link, args...)
		first := strings.SplitN(want.Stderr, "\n", 2)[0]
		if got.Code != want.Code || !strings.HasPrefix(got.Stderr, strings.TrimSuffix(first, ".")) {
			t.Errorf("qemu-img %v: vdisk exit %d %q; qemu-img exit %d %q", args, got.Code, got.Stderr, want.Code, want.Stderr)
		}
	}
	// The same binary under its own name stays vdisk.
	if out, _, code := vdisk(t, "--version"); code != 0 || !strings.HasPrefix(out, "vdisk version ") {
		t.Errorf("vdisk --version: %d %q", code, out)
	}
}
