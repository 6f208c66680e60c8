package rescue

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

// fileSource writes a source file of size bytes: random data with a hole
// and explicit zeros, its times set in the past.
func fileSource(t *testing.T, dir string, size int) string {
	t.Helper()
	path := filepath.Join(dir, "disk.img")
	data := randomBytes(size, 9)
	clear(data[size/4 : size/2])
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-72 * time.Hour).Truncate(time.Second)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	return path
}

type fileState struct {
	data  string
	mtime time.Time
	mode  os.FileMode
}

func stateOf(t *testing.T, path string) fileState {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return fileState{data: string(b), mtime: st.ModTime(), mode: st.Mode()}
}

// TestRunJobResumeAnyFormat: a rescue into raw, qcow2, vhd and vdi is
// interrupted, leaves its output and mapfile, resumes to a complete copy
// that qemu-img compare finds identical to the source; the source's bytes
// and mtime never change.
func TestRunJobResumeAnyFormat(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	dir := t.TempDir()
	src := fileSource(t, dir, 12<<20+1024)
	before := stateOf(t, src)
	for _, format := range []string{"raw", "qcow2", "vpc", "vdi"} {
		t.Run(format, func(t *testing.T) {
			out := filepath.Join(dir, "out."+format)
			mapfile := out + ".map"
			ctx, cancel := context.WithCancel(context.Background())
			job := Job{Source: src, Target: out, Format: format, Mapfile: mapfile, Command: "vdisk rescue test"}
			job.Options.SaveBytes = 1 << 20
			job.Options.Progress = func(m *Map) {
				if m.Bytes(Finished) > 5<<20 {
					cancel()
				}
			}
			m, err := RunJob(ctx, job)
			cancel()
			if !errors.Is(err, context.Canceled) || m == nil || m.Done() {
				t.Fatalf("interrupted rescue: %v", err)
			}
			if _, err := os.Stat(out); err != nil {
				t.Fatalf("the interrupted rescue left no output: %v", err)
			}
			if out, code := ddrescuelog(t, "-D", mapfile); code == 0 {
				t.Fatalf("ddrescuelog -D says an interrupted rescue is done: %s", out)
			}
			job.Options.Progress = nil
			m, err = RunJob(context.Background(), job)
			if err != nil {
				t.Fatal(err)
			}
			if !m.Done() {
				t.Errorf("resumed rescue not done: %+v", m.Bad())
			}
			if out, code := ddrescuelog(t, "-D", mapfile); code != 0 {
				t.Errorf("ddrescuelog -D: exit %d: %s", code, out)
			}
			qemutest.RequireSame(t, "raw", src, format, out)
			if format == "qcow2" || format == "vdi" {
				qemutest.RequireClean(t, format, out)
			}
		})
	}
	if after := stateOf(t, src); after != before {
		t.Error("the source changed (bytes, mode or mtime)")
	}
}

// TestRunJobAtomicWithoutMapfile: without a mapfile an interrupted rescue
// leaves nothing at the output path.
func TestRunJobAtomicWithoutMapfile(t *testing.T) {
	dir := t.TempDir()
	src := fileSource(t, dir, 4<<20)
	out := filepath.Join(dir, "out.raw")
	ctx, cancel := context.WithCancel(context.Background())
	job := Job{Source: src, Target: out}
	job.Options.Progress = func(m *Map) { cancel() }
	if _, err := RunJob(ctx, job); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the directory holds %d entries after an interrupted atomic rescue, want only the source", len(entries))
	}
	if _, err := RunJob(context.Background(), Job{Source: src, Target: src}); err == nil {
		t.Error("a rescue onto its own source was accepted")
	}
	// A VHDX reopens writable in place (issue 12): a rescue with a mapfile
	// into one resumes and completes.
	if _, err := RunJob(context.Background(), Job{Source: src, Target: filepath.Join(dir, "o.vhdx"), Format: "vhdx",
		Mapfile: filepath.Join(dir, "o.map")}); err != nil {
		t.Errorf("vhdx with a mapfile: %v", err)
	} else {
		qemutest.RequireSame(t, "raw", src, "vhdx", filepath.Join(dir, "o.vhdx"))
	}
	if _, err := RunJob(context.Background(), Job{Source: src, Target: filepath.Join(dir, "s.vmdk"), Format: "vmdk",
		CreateOptions: "subformat=streamOptimized"}); err == nil || !strings.Contains(err.Error(), "in order") {
		t.Errorf("streamOptimized target: %v", err)
	}
}

// TestRunJobFinishesDdrescue: vdisk resumes a rescue that GNU ddrescue
// started (its mapfile and its output), reading only what ddrescue left.
func TestRunJobFinishesDdrescue(t *testing.T) {
	ddrescue, err := exec.LookPath("ddrescue")
	if err != nil {
		if os.Getenv("VDISK_REQUIRE_QEMU") == "1" {
			t.Fatal("ddrescue not found")
		}
		t.Skip("ddrescue (gddrescue) not found")
	}
	dir := t.TempDir()
	src := fileSource(t, dir, 8<<20)
	out, mapfile := filepath.Join(dir, "out.raw"), filepath.Join(dir, "map")
	if b, err := exec.Command(ddrescue, "-q", "-s", "3Mi", src, out, mapfile).CombinedOutput(); err != nil {
		t.Fatalf("ddrescue: %v %s", err, b)
	}
	if _, code := ddrescuelog(t, "-D", mapfile); code == 0 {
		t.Fatal("ddrescue's partial run already done")
	}
	m, err := RunJob(context.Background(), Job{Source: src, Target: out, Mapfile: mapfile})
	if err != nil {
		t.Fatal(err)
	}
	if !m.Done() {
		t.Errorf("not done: %+v", m.Blocks)
	}
	want, _ := os.ReadFile(src)
	got, _ := os.ReadFile(out)
	if string(got) != string(want) {
		t.Error("the output is not the source")
	}
	if out, code := ddrescuelog(t, "-D", mapfile); code != 0 {
		t.Errorf("ddrescuelog -D: %d %s", code, out)
	}
}

// TestRunJobDirect reads the source with O_DIRECT (skipped where the file
// system refuses it).
func TestRunJobDirect(t *testing.T) {
	dir := t.TempDir()
	src := fileSource(t, dir, 3<<20+512)
	f, err := openDirect(src)
	if err != nil {
		t.Skipf("O_DIRECT here: %v", err)
	}
	f.Close()
	out := filepath.Join(dir, "out.raw")
	m, err := RunJob(context.Background(), Job{Source: src, Target: out, Direct: true})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(src)
	got, _ := os.ReadFile(out)
	if !m.Done() || string(got) != string(want) {
		t.Errorf("direct rescue: done %v, equal %v", m.Done(), string(got) == string(want))
	}
}

// TestMapfileStatusesForDdrescuelog: every block status vdisk writes is
// read by ddrescuelog as that status.
func TestMapfileStatusesForDdrescuelog(t *testing.T) {
	m := NewMap(100 * 512)
	m.Set(0, 10*512, Finished)
	m.Set(10*512, 2*512, NonTrimmed)
	m.Set(12*512, 3*512, NonScraped)
	m.Set(15*512, 4*512, BadSector)
	path := filepath.Join(t.TempDir(), "map")
	if err := saveMap(path, m); err != nil {
		t.Fatal(err)
	}
	for st, want := range map[string]int{"+": 10, "*": 2, "/": 3, "-": 4, "?": 81} {
		out, code := ddrescuelog(t, "-b", "512", "-l"+st, path)
		if n := len(strings.Fields(out)); code != 0 || n != want {
			t.Errorf("ddrescuelog -l%s: exit %d, %d sectors, want %d", st, code, n, want)
		}
	}
	out, _ := ddrescuelog(t, "-t", path)
	if !strings.Contains(out, "non-scraped:     1536 B") && !strings.Contains(out, strconv.Itoa(1536)) {
		t.Errorf("ddrescuelog -t:\n%s", out)
	}
}

// TestResumeRefusesAReadOnlyTarget: a mapfile that describes a rescue into
// an image vdisk opens only read-only (an EWF, as ewfacquire made it from
// ddrescue's partial output) is refused by name, ErrReadOnly, before
// anything is read or written: the image and the mapfile stay as they
// were, and ewfverify still verifies the image. (A VHDX, refused so
// before issue 12, now resumes: TestRunJobAtomicWithoutMapfile.)
func TestResumeRefusesAReadOnlyTarget(t *testing.T) {
	dir := t.TempDir()
	src := fileSource(t, dir, 4<<20)
	out, mapfile := filepath.Join(dir, "out.raw"), filepath.Join(dir, "out.map")
	if r := qemutest.Exec(t, "ddrescue", "-q", "-s", "1Mi", src, out, mapfile); r.Code != 0 {
		t.Fatalf("ddrescue: exit %d: %s", r.Code, r.Stderr)
	}
	if r := qemutest.Exec(t, "ewfacquire", "-u", "-q", "-t", filepath.Join(dir, "out"), out); r.Code != 0 {
		t.Fatalf("ewfacquire: exit %d: %s%s", r.Code, r.Stdout, r.Stderr)
	}
	target := filepath.Join(dir, "out.E01")
	before := stateOf(t, target)
	mapBefore, err := os.ReadFile(mapfile)
	if err != nil {
		t.Fatal(err)
	}
	_, err = RunJob(context.Background(), Job{Source: src, Target: target, Mapfile: mapfile})
	if !errors.Is(err, formats.ErrReadOnly) || !strings.Contains(err.Error(), target) || !strings.Contains(err.Error(), "ewf images cannot be reopened for writing") {
		t.Fatalf("resuming into an EWF: %v, want the read-only refusal naming %s", err, target)
	}
	if stateOf(t, target) != before {
		t.Error("the refused target changed (bytes, mode or mtime)")
	}
	if got, _ := os.ReadFile(mapfile); !bytes.Equal(got, mapBefore) {
		t.Errorf("the refused rescue rewrote the mapfile:\n%s\nwas:\n%s", got, mapBefore)
	}
	if r := qemutest.Exec(t, "ewfverify", "-q", target); r.Code != 0 {
		t.Errorf("ewfverify of the refused target: exit %d: %s%s", r.Code, r.Stdout, r.Stderr)
	}
}
