//go:build unix

package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// The signal tests send Unix signals to a child vdisk; Windows has no way
// to deliver SIGINT to another process.

// startConvert starts a conversion in a child process whose stdout (the
// progress lines) nobody reads: once the pipe fills, the child blocks in the
// middle of the conversion, with its temporary output in place.
func startConvert(t *testing.T, src, dst string) (*exec.Cmd, io.ReadCloser) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "convert", "-p", "-m", "1", "-O", "raw", src, dst)
	cmd.Env = append(os.Environ(), "VDISK_TEST_MAIN=1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, stdout
}

func TestSignalLeavesNoOutput(t *testing.T) {
	t.Parallel()
	srcDir := t.TempDir()
	src := manyExtents(t, srcDir)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			dst := filepath.Join(dir, "out.raw")
			cmd, stdout := startConvert(t, src, dst)
			tmp := waitTemp(t, stdout, dir)
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			go io.Copy(io.Discard, stdout) // let a blocked child run to its cleanup
			err := cmd.Wait()
			if err == nil {
				t.Fatalf("conversion killed by %v exited 0", sig)
			}
			if _, err := os.Stat(dst); !os.IsNotExist(err) {
				t.Fatalf("destination exists after %v: %v", sig, err)
			}
			_, err = os.Stat(tmp)
			if sig != syscall.SIGKILL && !os.IsNotExist(err) {
				t.Fatalf("temporary file %s left after %v", tmp, sig)
			}
			if sig == syscall.SIGKILL {
				// The next conversion to the same place removes the leftover
				// (and says so), and nothing else that looks like one.
				decoys := staleDecoys(t, dir)
				_, stderr, code := vdisk(t, "convert", "-O", "raw", src, dst)
				if code != 0 || !strings.Contains(stderr, "removed "+tmp) {
					t.Errorf("after SIGKILL: exit %d, stderr %q; want a notice naming %s", code, stderr, tmp)
				}
				if _, err := os.Stat(tmp); !os.IsNotExist(err) {
					t.Errorf("the killed run's temporary %s is still there (%v)", tmp, err)
				}
				for _, d := range decoys {
					if _, err := os.Lstat(d); err != nil {
						t.Errorf("%s, not a dead run's temporary of %s, was removed", d, dst)
					}
				}
			}
		})
	}
}

// staleDecoys makes files beside dir/out.raw that look like a killed run's
// temporaries but are not: one a live run holds (flock), a symlink, other
// names. The file held stays open for the test's life.
func staleDecoys(t *testing.T, dir string) []string {
	t.Helper()
	live := filepath.Join(dir, ".out.raw.vdisk-0live0.tmp")
	f, err := os.Create(live)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, ".out.raw.vdisk-0link0.tmp")
	if err := os.Symlink(live, link); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range []string{".out.raw.other.tmp", ".other.raw.vdisk-000000.tmp", "out.raw.vdisk-000000.tmp"} {
		p := filepath.Join(dir, n)
		if err := os.WriteFile(p, []byte("keep"), 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, p)
	}
	return append(names, live, link)
}
