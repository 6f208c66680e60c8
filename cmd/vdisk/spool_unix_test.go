//go:build !windows

package main

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/klauspost/compress/gzip"
)

// TestSpoolSignalLeavesNothing interrupts a conversion from a compressed
// stdin while it spools: the child has read most of what the test wrote
// (a write to a pipe returns only once the reader has made room), then
// blocks waiting for more. SIGINT ends it with no output and no spool.
func TestSpoolSignalLeavesNothing(t *testing.T) {
	t.Parallel()
	data := make([]byte, 8<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(data)
	zw.Close()
	dir := t.TempDir()
	dst := filepath.Join(dir, "out.raw")
	cmd := exec.Command(os.Args[0], "convert", "-O", "raw", "-", dst)
	cmd.Env = append(os.Environ(), "VDISK_TEST_MAIN=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	// Half the stream: the child is decompressing into its spool and then
	// blocks reading stdin for the rest.
	if _, err := stdin.Write(gz.Bytes()[:gz.Len()/2]); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil {
		t.Fatal("an interrupted conversion exited 0")
	}
	if !strings.Contains(stderr.String(), "interrupted") {
		t.Errorf("stderr %q does not say interrupted", stderr.String())
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*"))
	hidden, _ := filepath.Glob(filepath.Join(dir, ".*"))
	if len(left)+len(hidden) != 0 {
		t.Errorf("files left after SIGINT: %v %v", left, hidden)
	}
}
