package vhdx

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/clitest"
)

// TestHostileLogCLI is case 3 of issue 19 through the CLI, in a child
// process limited to 1 GiB of address space: a 16 MiB log of data sectors
// and zero descriptors (info took 66 s of CPU, a self-parenting disk with
// such a log 108 s and 4.8 GB) opens in well under a second; the
// self-parenting one is refused as a loop before its log is replayed twice.
func TestHostileLogCLI(t *testing.T) {
	bin := clitest.Binary(t)
	dir := t.TempDir()
	run := func(t *testing.T, args ...string) clitest.Result {
		t.Helper()
		res := clitest.Run(t, bin, 1<<30, 2*time.Minute, args...)
		t.Logf("%s: exit %d in %v (CPU %v), peak RSS %d MiB: %s", strings.Join(args, " "), res.Code, res.Elapsed.Round(time.Millisecond), res.CPU.Round(time.Millisecond), res.MaxRSSBytes>>20, strings.TrimSpace(res.Stderr))
		if res.CPU > 10*time.Second {
			t.Errorf("took %v of CPU", res.CPU)
		}
		return res
	}
	t.Run("big-log", func(t *testing.T) {
		path := filepath.Join(dir, "log.vhdx")
		if err := os.WriteFile(path, quadraticLog(t, 16<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, cmd := range [][]string{{"info", path}, {"map", path}, {"convert", "-O", "raw", path, filepath.Join(dir, "log.raw")}} {
			if res := run(t, cmd...); res.Code != 0 {
				t.Errorf("%s: exit %d: %s", cmd[0], res.Code, res.Stderr)
			}
		}
	})
	t.Run("self-parent-with-log", func(t *testing.T) {
		basePath := filepath.Join(dir, "base.vhdx")
		w := create(t, basePath, 4<<20, "")
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		loopPath := filepath.Join(dir, "loop.vhdx")
		o, _ := formats.ParseOptions(createOptions, "backing_file=base.vhdx,log_size=16M")
		f, _ := os.Create(loopPath)
		c, err := Create(context.Background(), formats.CreateRequest{File: formats.NewOSFile(f), Name: loopPath, Options: o})
		if err != nil {
			t.Fatal(err)
		}
		own := c.hdr.DataWriteGUID
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(loopPath)
		pl := parentLocator{Keys: []string{"parent_linkage", "relative_path"}, Values: map[string]string{
			"parent_linkage": "{" + own.String() + "}", "relative_path": "loop.vhdx"}}
		loc := metaItem(b, itemParentLoc)
		clear(loc)
		copy(loc, pl.encode())
		// The log's changes go to a new 8 MiB at the end of the file.
		addQuadraticEntry(t, b, 16<<20, int64(len(b)), 8<<20, uint64(len(b))+8<<20)
		if err := os.WriteFile(loopPath, b, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, cmd := range []string{"map", "info --backing-chain"} {
			clitest.RequireCleanError(t, run(t, append(strings.Fields(cmd), loopPath)...), "backing loop: "+loopPath+" -> "+loopPath)
		}
	})
}
