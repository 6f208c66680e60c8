package nbd

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

// runServer starts an NBD server process on a unix socket and waits (20 s
// at most) until an NBD client can connect. It is stopped (SIGTERM) by
// stopServer or when the test ends.
func runServer(t *testing.T, sock, name string, args ...string) (string, func()) {
	t.Helper()
	qemutest.Tool(t, name)
	cmd := exec.Command(name, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}
	}
	t.Cleanup(stop)
	url := "nbd+unix:///?socket=" + sock
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := Dial(context.Background(), url, DialOptions{Timeout: time.Second})
		if err == nil {
			c.Close()
			return url, stop
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not serve %s: %v", name, sock, err)
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-t.Context().Done():
			return url, stop
		}
	}
}

// TestClientAlignedServer: against nbdkit advertising (and enforcing) a 4
// KiB minimum block, unaligned reads, writes and zeroing from the Client
// work; nbdcopy reads back the bytes a model in memory predicts.
func TestClientAlignedServer(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "k.sock")
	url, _ := runServer(t, sock, "nbdkit", "--foreground", "--exit-with-parent", "-U", sock,
		"--filter=blocksize-policy", "memory", "1M", "blocksize-minimum=4096", "blocksize-error-policy=error")
	c, err := Dial(context.Background(), url, DialOptions{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	if minimum, _, _ := c.BlockSizes(); minimum != 4096 {
		t.Fatalf("minimum block %d, want the 4096 nbdkit advertises", minimum)
	}
	model := make([]byte, 1<<20)
	write := func(off int, p []byte) {
		t.Helper()
		if _, err := c.WriteAt(p, int64(off)); err != nil {
			t.Fatalf("write at %d: %v", off, err)
		}
		copy(model[off:], p)
	}
	write(1000, bytes.Repeat([]byte{0x5a}, 3000))
	write(8192, bytes.Repeat([]byte{0x11}, 8192))
	write(70000, bytes.Repeat([]byte{0x22}, 100000))
	if err := c.WriteZeroes(9000, 5000); err != nil {
		t.Fatal(err)
	}
	clear(model[9000:14000])
	got := make([]byte, 7777)
	if _, err := c.ReadAt(got, 999); err != nil || !bytes.Equal(got, model[999:999+7777]) {
		t.Fatalf("unaligned read back: %v", err)
	}
	if _, err := c.WriteAt([]byte{1}, 1<<20); err == nil {
		t.Error("a write past the export's end succeeded")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out.raw")
	if r := qemutest.Exec(t, "nbdcopy", url, out); r.Code != 0 {
		t.Fatalf("nbdcopy: %s", r.Stderr)
	}
	disk, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(disk, model) {
		t.Error("nbdcopy reads other bytes than the client wrote")
	}
}

// TestClientQemuNBD: the Client writes into a qcow2 served by qemu-nbd,
// zeroes with FAST_ZERO (which qemu-nbd offers) and reads block status; the
// image is then clean and equal to the same writes made by qemu-io.
func TestClientQemuNBD(t *testing.T) {
	dir := t.TempDir()
	path, ref := filepath.Join(dir, "a.qcow2"), filepath.Join(dir, "ref.qcow2")
	for _, p := range []string{path, ref} {
		qemutest.Img(t, "create", "-q", "-f", "qcow2", p, "8M")
		qemutest.IO(t, "qcow2", p, "write -P 0x5a 0 4M")
	}
	sock := filepath.Join(dir, "q.sock")
	url, stop := runServer(t, sock, "qemu-nbd", "--persistent", "-f", "qcow2", "-k", sock, path)
	c, err := Dial(context.Background(), url, DialOptions{Writable: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteAt(bytes.Repeat([]byte{0x77}, 1<<20), 5<<20); err != nil {
		t.Fatal(err)
	}
	if err := c.FastZero(1<<20, 1<<20); err != nil && !errors.Is(err, ErrNotSupported) {
		t.Fatal(err)
	} else if err != nil {
		if err := c.WriteZeroes(1<<20, 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	if !c.CanBlockStatus() {
		t.Fatal("no base:allocation from qemu-nbd")
	}
	exts, err := c.Extents(0, 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	var zero int64
	for _, e := range exts {
		if e.Kind == formats.Zero {
			zero += e.Length
		}
	}
	if zero < 1<<20 {
		t.Errorf("block status after zeroing 1 MiB reports %d zero bytes: %v", zero, exts)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	qemutest.IO(t, "qcow2", ref, "write -P 0x77 5M 1M", "write -z 1M 1M")
	stop() // qemu-nbd holds the image: stop it before judging
	qemutest.RequireClean(t, "qcow2", path)
	qemutest.RequireSame(t, "qcow2", path, "qcow2", ref)
}
