package main

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// lease holds a Linux write lease on a file: another process's open of it
// blocks until the lease is released, and the kernel tells the holder
// (SIGIO) that someone is opening it. A child vdisk thus blocks, observably,
// on its first open of an input.
type lease struct {
	f    *os.File
	sigs chan os.Signal
}

func takeLease(t *testing.T, path string) *lease {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	l := &lease{f: f, sigs: make(chan os.Signal, 4)}
	signal.Notify(l.sigs, syscall.SIGIO)
	// EAGAIN: another process has the file open. A child that another
	// test is starting holds a copy of every descriptor until its exec
	// closes them, so the lease is tried again until that passes.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		_, err = unix.FcntlInt(f.Fd(), unix.F_SETLEASE, unix.F_WRLCK)
		if !errors.Is(err, unix.EAGAIN) || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		l.release()
		t.Skipf("cannot take a file lease here: %v", err)
	}
	return l
}

// waitBreak waits until another process opens the file. The minute is a
// guard for a child that never opens it, not a timing.
func (l *lease) waitBreak(t *testing.T) {
	t.Helper()
	guard := time.After(time.Minute)
	for {
		select {
		case <-l.sigs:
		case <-guard:
			t.Fatal("the child never opened the leased file")
		}
		// SIGIO is process-wide: a late one for an earlier lease may come
		// first. While a break is pending, F_GETLEASE answers the type the
		// lease must drop to instead of F_WRLCK.
		if kind, err := unix.FcntlInt(l.f.Fd(), unix.F_GETLEASE, 0); err == nil && kind != unix.F_WRLCK {
			return
		}
	}
}

func (l *lease) release() {
	unix.FcntlInt(l.f.Fd(), unix.F_SETLEASE, unix.F_UNLCK)
	signal.Stop(l.sigs)
	l.f.Close()
}

// TestSignalStopsEveryCommand interrupts each long-running subcommand while
// it is blocked opening its input (held by a lease): once it has said
// "interrupted", the input is released, and the command must stop at its
// next I/O with exit 130, leaving no output and its image as it was (it used
// to run to the end and exit 0, create leaving its file).
func TestSignalStopsEveryCommand(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	base := filepath.Join(dir, "base.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", base, "256M")
	qemutest.IO(t, "qcow2", base, "write -P 0x5a 0 1M", "write -P 0xa5 100M 1M")
	other := filepath.Join(dir, "other.raw")
	qemutest.Img(t, "create", "-q", "-f", "raw", other, "256M")
	resized := filepath.Join(dir, "resize.raw")
	qemutest.Img(t, "create", "-q", "-f", "raw", resized, "64M")
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(tree, 0o755)
	treeFile := filepath.Join(tree, "file.txt")
	os.WriteFile(treeFile, []byte("hello"), 0o644)
	out := filepath.Join(dir, "out")

	for _, tc := range []struct {
		name   string
		leased string
		args   []string
		after  func(t *testing.T) // the state that must hold afterwards
	}{
		{"create", base, []string{"create", "-f", "qcow2", "-o", "preallocation=full,extended_l2=on", "-b", base, "-F", "qcow2", out}, nil},
		{"resize", resized, []string{"resize", "-f", "raw", "--preallocation=full", resized, "+1G"}, func(t *testing.T) {
			if st, err := os.Stat(resized); err != nil || st.Size() != 64<<20 {
				t.Errorf("interrupted resize changed the image: %v %v", st.Size(), err)
			}
		}},
		{"measure", base, []string{"measure", "-O", "qcow2", base}, nil},
		{"compare", base, []string{"compare", base, other}, nil},
		{"check", base, []string{"check", base}, nil},
		{"map", base, []string{"map", base}, nil},
		{"info", base, []string{"info", base}, nil},
		{"convert", base, []string{"convert", "-O", "qcow2", base, out}, nil},
		{"dd", base, []string{"dd", "if=" + base, "of=" + out}, nil},
		{"checksum", base, []string{"checksum", base}, nil},
		{"iso create", treeFile, []string{"iso", "create", "-o", out, tree}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := takeLease(t, tc.leased)
			released := false
			defer func() {
				if !released {
					l.release()
				}
			}()
			cmd := exec.Command(os.Args[0], tc.args...)
			cmd.Env = append(os.Environ(), "VDISK_TEST_MAIN=1")
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			l.waitBreak(t)
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			lines := bufio.NewScanner(stderr)
			var said []string
			for lines.Scan() {
				said = append(said, lines.Text())
				if strings.HasSuffix(lines.Text(), ": interrupted") {
					break
				}
			}
			l.release() // the child's open completes now
			released = true
			for lines.Scan() {
				said = append(said, lines.Text())
			}
			err = cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 130 {
				t.Errorf("vdisk %s interrupted: %v, stderr %q; want exit 130", strings.Join(tc.args, " "), err, said)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("vdisk %s interrupted left %s", tc.name, out)
				os.Remove(out)
			}
			if tc.after != nil {
				tc.after(t)
			}
		})
	}
}

// watch blocks until an inotify event in mask happens on path (a file or a
// directory); the minute is a guard for a child that never gets there.
func watch(t *testing.T, path string, mask uint32) func() {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		t.Skipf("inotify: %v", err)
	}
	if _, err := unix.InotifyAddWatch(fd, path, mask); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	seen := make(chan error, 1)
	go func() {
		buf := make([]byte, 4096)
		_, err := unix.Read(fd, buf)
		seen <- err
	}()
	return func() {
		t.Helper()
		defer unix.Close(fd)
		select {
		case err := <-seen:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(time.Minute):
			t.Fatalf("no inotify event on %s", path)
		}
	}
}

// TestSignalStopsPreallocation interrupts create and resize while they
// write gigabytes of zeros (preallocation=full): the signal is sent once the
// child has started on the output (inotify says so), and the command must
// stop at its next write with exit 130, leaving no output and the resized
// image at its old size (both used to run to the end and exit 0).
func TestSignalStopsPreallocation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	img := filepath.Join(dir, "grow.raw")
	qemutest.Img(t, "create", "-q", "-f", "raw", img, "64M")
	for _, tc := range []struct {
		name    string
		watched string
		mask    uint32
		args    []string
	}{
		{"create raw", dir, unix.IN_CREATE, []string{"create", "-f", "raw", "-o", "preallocation=full", filepath.Join(dir, "new.raw"), "4G"}},
		{"create qcow2", dir, unix.IN_CREATE, []string{"create", "-f", "qcow2", "-o", "preallocation=full", filepath.Join(dir, "new.qcow2"), "4G"}},
		{"resize raw", img, unix.IN_MODIFY, []string{"resize", "-f", "raw", "--preallocation=full", img, "+4G"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			started := watch(t, tc.watched, tc.mask)
			cmd := exec.Command(os.Args[0], tc.args...)
			cmd.Env = append(os.Environ(), "VDISK_TEST_MAIN=1")
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			started()
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			err := cmd.Wait()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 130 {
				t.Errorf("vdisk %s interrupted: %v, stderr %q; want exit 130", strings.Join(tc.args, " "), err, stderr.String())
			}
			matches, _ := filepath.Glob(filepath.Join(dir, "*new*"))
			if len(matches) > 0 {
				t.Errorf("interrupted %s left %v", tc.name, matches)
				for _, m := range matches {
					os.Remove(m)
				}
			}
			if st, err := os.Stat(img); err != nil || st.Size() != 64<<20 {
				t.Errorf("after %s: %s is %d bytes (%v), want its old 64 MiB", tc.name, img, st.Size(), err)
			}
		})
	}
}
