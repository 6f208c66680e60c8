package nbd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
	_ "github.com/vdiskio/vdisk/qcow2"
	_ "github.com/vdiskio/vdisk/raw"
	_ "github.com/vdiskio/vdisk/vdi"
	_ "github.com/vdiskio/vdisk/vhd"
	_ "github.com/vdiskio/vdisk/vhdx"
	_ "github.com/vdiskio/vdisk/vmdk"
)

// served is a running in-process server on a unix socket.
type served struct {
	sock string
	url  string
	stop func() // cancels Serve and waits for it
}

// serve runs srv on a fresh unix socket until the test ends (or stop).
func serve(t *testing.T, srv *Server) *served {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "nbd.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("the server did not stop within 20 s")
		}
	}
	t.Cleanup(stop)
	return &served{sock: sock, url: "nbd+unix:///?socket=" + sock, stop: stop}
}

// openImage opens an image file for serving.
func openImage(t *testing.T, path string, writable bool) formats.Image {
	t.Helper()
	img, err := formats.Open(context.Background(), path, formats.OpenOptions{Writable: writable})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { img.Close() })
	return img
}

// qcow2Image makes a 64 MiB qcow2 with data, a zero cluster range and
// unallocated space, written by qemu-io.
func qcow2Image(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "a.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", path, "64M")
	qemutest.IO(t, "qcow2", path, "write -P 0x5a 0 1M", "write -z 4M 1M", "write -P 0x11 10M 64k", "write -P 0x22 63M 4k")
	return path
}

func TestNbdinfoSeesExportFlags(t *testing.T) {
	dir := t.TempDir()
	path := qcow2Image(t, dir)
	rwPath := filepath.Join(dir, "b.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", rwPath, "16M")
	ro := serve(t, &Server{Exports: []*Export{{Image: openImage(t, path, false)}}})
	rw := serve(t, &Server{Exports: []*Export{{Image: openImage(t, rwPath, true), Writable: true}}})
	for _, c := range []struct {
		url  string
		can  string
		want bool
	}{
		{ro.url, "read", true}, {ro.url, "write", false}, {ro.url, "multi-conn", true},
		{ro.url, "df", true}, {ro.url, "structured-reply", true}, {ro.url, "flush", true},
		{ro.url, "trim", false}, {ro.url, "zero", false}, {ro.url, "fua", false},
		{rw.url, "write", true}, {rw.url, "multi-conn", false}, {rw.url, "flush", true},
		{rw.url, "fua", true}, {rw.url, "trim", true}, {rw.url, "zero", true}, {rw.url, "fast-zero", true},
	} {
		r := qemutest.Exec(t, "nbdinfo", "--can", c.can, c.url)
		if got := r.Code == 0; got != c.want || (r.Code != 0 && r.Code != 2) {
			t.Errorf("nbdinfo --can %s %s: exit %d, want can=%t: %s", c.can, c.url, r.Code, c.want, r.Stderr)
		}
	}
	// Block size constraints as nbdinfo reads them.
	out := qemutest.Exec(t, "nbdinfo", "--json", ro.url)
	var info struct {
		Exports []struct {
			Min  int64 `json:"block_size_minimum"`
			Pref int64 `json:"block_size_preferred"`
			Max  int64 `json:"block_size_maximum"`
		}
	}
	if err := json.Unmarshal([]byte(out.Stdout), &info); err != nil || len(info.Exports) != 1 {
		t.Fatalf("nbdinfo --json: %v\n%s", err, out.Stdout)
	}
	// qcow2's default 64 KiB cluster is the preferred size.
	if e := info.Exports[0]; e.Min != 1 || e.Pref != 64<<10 || e.Max != 32<<20 {
		t.Errorf("block sizes %+v, want 1, 65536, 33554432", e)
	}
}

// nbdMap is `nbdinfo --map --json` merged into runs of (data, zero).
type span struct {
	Start, Length int64
	Data, Zero    bool
}

func nbdinfoMap(t *testing.T, url string) []span {
	t.Helper()
	out := qemutest.Exec(t, "nbdinfo", "--map", "--json", url)
	if out.Code != 0 {
		t.Fatalf("nbdinfo --map: exit %d: %s", out.Code, out.Stderr)
	}
	var raw []struct {
		Offset, Length int64
		Type           int
	}
	if err := json.Unmarshal([]byte(out.Stdout), &raw); err != nil {
		t.Fatalf("nbdinfo --map --json: %v\n%s", err, out.Stdout)
	}
	var spans []span
	for _, r := range raw {
		spans = appendSpan(spans, span{r.Offset, r.Length, r.Type&1 == 0, r.Type&2 != 0})
	}
	return spans
}

// qemuMap is `qemu-img map --output=json` merged into runs of (data, zero).
func qemuMap(t *testing.T, args ...string) []span {
	t.Helper()
	out := qemutest.Img(t, append([]string{"map", "--output=json"}, args...)...)
	var raw []struct {
		Start, Length int64
		Data, Zero    bool
	}
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatalf("qemu-img map: %v\n%s", err, out)
	}
	var spans []span
	for _, r := range raw {
		spans = appendSpan(spans, span{r.Start, r.Length, r.Data, r.Zero || !r.Data})
	}
	return spans
}

func appendSpan(spans []span, s span) []span {
	if n := len(spans); n > 0 && spans[n-1].Data == s.Data && spans[n-1].Zero == s.Zero && spans[n-1].Start+spans[n-1].Length == s.Start {
		spans[n-1].Length += s.Length
		return spans
	}
	return append(spans, s)
}

func TestMapMatchesQemu(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", base, "64M")
	qemutest.IO(t, "qcow2", base, "write -P 0x33 2M 2M", "write -P 0x44 30M 1M")
	top := filepath.Join(dir, "top.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", top)
	qemutest.IO(t, "qcow2", top, "write -P 0x5a 0 1M", "write -z 2M 512k", "write -P 0x11 10M 64k")
	s := serve(t, &Server{Exports: []*Export{{Image: openImage(t, top, false)}}})
	want := qemuMap(t, top)
	if got := nbdinfoMap(t, s.url); !equalSpans(got, want) {
		t.Errorf("nbdinfo --map through vdisk's server:\n got %v\nwant %v (qemu-img map of the file)", got, want)
	}
	if got := qemuMap(t, "-f", "raw", s.url); !equalSpans(got, want) {
		t.Errorf("qemu-img map through vdisk's server:\n got %v\nwant %v (qemu-img map of the file)", got, want)
	}
	// Reads spanning holes come back as hole chunks: the Client reassembles
	// the bytes qemu-img reads from the file.
	flat, err := os.ReadFile(qemutest.ToRaw(t, "qcow2", top))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Dial(context.Background(), s.url, DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := bytes.Repeat([]byte{0xff}, len(flat)) // holes must be cleared, not skipped
	for off := 0; off < len(got); off += 8 << 20 {
		if _, err := c.ReadAt(got[off:off+8<<20], int64(off)); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(got, flat) {
		t.Error("the Client read other bytes than qemu-img converts")
	}
}

func equalSpans(a, b []span) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestQemuImgConvertThroughServer: qemu-img converting the served image
// (nbd+unix) gives the bytes qemu-img gives converting the file, for every
// format qemu-img writes, and so does nbdcopy.
func TestQemuImgConvertThroughServer(t *testing.T) {
	dir := t.TempDir()
	raw := filepath.Join(dir, "src.raw")
	qemutest.Img(t, "create", "-q", "-f", "raw", raw, "24M")
	qemutest.IO(t, "raw", raw, "write -P 0x5a 0 1M", "write -P 0xa5 5M 3M", "write -P 0x11 20000k 3k")
	for _, c := range []struct{ format, opts string }{
		{"qcow2", ""}, {"qcow2", "compat=0.10"}, {"vmdk", ""}, {"vmdk", "subformat=streamOptimized"},
		{"vpc", ""}, {"vhdx", ""}, {"vdi", ""}, {"raw", ""},
	} {
		t.Run(c.format+c.opts, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "src."+c.format)
			args := []string{"convert", "-f", "raw", "-O", c.format}
			if c.opts != "" {
				args = append(args, "-o", c.opts)
			}
			qemutest.Img(t, append(args, raw, src)...)
			want := qemutest.ToRaw(t, c.format, src)
			s := serve(t, &Server{Exports: []*Export{{Image: openImage(t, src, false)}}})
			got := filepath.Join(t.TempDir(), "got.raw")
			qemutest.Img(t, "convert", "-f", "raw", "-O", "raw", s.url, got)
			requireSameFile(t, got, want)
			copied := filepath.Join(t.TempDir(), "copied.raw")
			if r := qemutest.Exec(t, "nbdcopy", s.url, copied); r.Code != 0 {
				t.Fatalf("nbdcopy: exit %d: %s", r.Code, r.Stderr)
			}
			requireSameFile(t, copied, want)
		})
	}
}

func requireSameFile(t *testing.T, got, want string) {
	t.Helper()
	a, err := os.ReadFile(got)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("%s (%d bytes) differs from %s (%d bytes)", got, len(a), want, len(b))
	}
}

// TestQemuIOWritesIntoServedQcow2: qemu-io writes, zeroes and discards
// through NBD; afterwards qemu-img check is clean and the image equals a
// copy given the same commands directly.
func TestQemuIOWritesIntoServedQcow2(t *testing.T) {
	dir := t.TempDir()
	path := qcow2Image(t, dir)
	ref := filepath.Join(dir, "ref.qcow2")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ref, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cmds := []string{"write -P 0x77 512k 1M", "write -z 10M 32k", "write -z -u 0 64k", "discard 63M 64k",
		"write -P 0x99 40M 3M", "aio_write -P 0x42 50M 64k", "aio_flush", "flush", "write -P 0x12 33M 512"}
	img := openImage(t, path, true)
	s := serve(t, &Server{Exports: []*Export{{Image: img, Writable: true}}})
	qemutest.IO(t, "raw", s.url, cmds...)
	s.stop()
	if err := img.Close(); err != nil {
		t.Fatal(err)
	}
	qemutest.IO(t, "qcow2", ref, cmds...)
	qemutest.RequireClean(t, "qcow2", path)
	qemutest.RequireSame(t, "qcow2", path, "qcow2", ref)
}

// TestNbdcopyIntoServedImages: nbdcopy writes a raw file into served raw and
// qcow2 exports; qemu-img compare judges the results.
func TestNbdcopyIntoServedImages(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	qemutest.Img(t, "create", "-q", "-f", "raw", src, "32M")
	qemutest.IO(t, "raw", src, "write -P 0x5a 0 1M", "write -P 0xa5 9M 5M", "write -P 0x11 30M 4k")
	for _, format := range []string{"raw", "qcow2", "vpc", "vdi"} {
		t.Run(format, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "dst."+format)
			qemutest.Img(t, "create", "-q", "-f", format, dst, "32M")
			img := openImage(t, dst, true)
			s := serve(t, &Server{Exports: []*Export{{Image: img, Writable: true}}})
			if r := qemutest.Exec(t, "nbdcopy", src, s.url); r.Code != 0 {
				t.Fatalf("nbdcopy: exit %d: %s", r.Code, r.Stderr)
			}
			s.stop()
			if err := img.Close(); err != nil {
				t.Fatal(err)
			}
			if format == "qcow2" || format == "vdi" {
				qemutest.RequireClean(t, format, dst)
			}
			size := qemutest.Info(t, format, dst)["virtual-size"].(float64)
			if int64(size) < 32<<20 {
				t.Fatalf("virtual size %v", size)
			}
			if r := qemutest.Exec(t, "qemu-img", "compare", "-f", "raw", "-F", format, src, dst); r.Code != 0 {
				t.Fatalf("qemu-img compare: exit %d: %s%s", r.Code, r.Stdout, r.Stderr)
			}
		})
	}
}

func TestNbdinfoList(t *testing.T) {
	dir := t.TempDir()
	path := qcow2Image(t, dir)
	img := openImage(t, path, false)
	s := serve(t, &Server{Exports: []*Export{{Name: "first", Description: "the first disk", Image: img},
		{Name: "second", Image: img}}})
	out := qemutest.Exec(t, "nbdinfo", "--list", "--json", s.url)
	if out.Code != 0 {
		t.Fatalf("nbdinfo --list: exit %d: %s", out.Code, out.Stderr)
	}
	var list struct {
		Exports []struct {
			Name        string `json:"export-name"`
			Description string
			Size        int64 `json:"export-size"`
		}
	}
	if err := json.Unmarshal([]byte(out.Stdout), &list); err != nil {
		t.Fatalf("%v\n%s", err, out.Stdout)
	}
	if len(list.Exports) != 2 || list.Exports[0].Name != "first" || list.Exports[0].Description != "the first disk" ||
		list.Exports[1].Name != "second" || list.Exports[0].Size != 64<<20 {
		t.Errorf("nbdinfo --list: %+v\n%s", list.Exports, out.Stdout)
	}
	if r := qemutest.Exec(t, "nbdinfo", "--size", "nbd+unix:///missing?socket="+s.sock); r.Code == 0 || !strings.Contains(r.Stderr, "missing") {
		t.Errorf("nbdinfo of an unknown export: exit %d: %s", r.Code, r.Stderr)
	}
}

// TestServeRefusesUnwritableExport: an export marked writable whose image
// cannot be written (vdisk writes VHDX and VMDK only as new images) is
// refused by Serve, which closes its listener.
func TestServeRefusesUnwritableExport(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "d.vhdx")
	qemutest.Img(t, "create", "-q", "-f", "vhdx", path, "8M")
	img := openImage(t, path, false)
	l, err := net.Listen("unix", filepath.Join(dir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	err = (&Server{Exports: []*Export{{Image: img, Writable: true}}}).Serve(context.Background(), l)
	if !errors.Is(err, formats.ErrReadOnly) {
		t.Fatalf("Serve: %v, want ErrReadOnly", err)
	}
	if _, err := l.Accept(); err == nil {
		t.Fatal("the listener is still open")
	}
}
