package main

import (
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// remoteServer serves dir over loopback HTTP; only requests carrying the
// presigned query are answered; with noRange, Range is ignored (200 and
// the whole file).
func remoteServer(t *testing.T, dir string, noRange bool) string {
	t.Helper()
	files := http.FileServer(http.Dir(dir))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("sig") != "s3cr3t" && !strings.HasSuffix(r.URL.Path, "base.qcow2") {
			http.Error(w, "signature required", http.StatusForbidden)
			return
		}
		if noRange {
			r.Header.Del("Range")
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestRemoteSources: http:// URLs (with a presigned-style query) are
// sources of info, map, checksum, compare and convert, from a server that
// honours Range and from one that ignores it; the conversions equal the
// source for qemu-img compare, the other outputs equal the local file's;
// a multi-block .qcow2.xz reads over HTTP too; file:// names a local file.
// A remote overlay's backing file is followed only under
// --references=any. No output or error shows the query.
func TestRemoteSources(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	base := filepath.Join(dir, "base.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", base, "16M")
	qemutest.IO(t, "qcow2", base, "write -P 0x5a 0 64k", "write -P 0xa5 5M 3M", "write -P 0x11 15M 3k")
	top := filepath.Join(dir, "top.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", top)
	qemutest.IO(t, "qcow2", top, "write -P 0x77 6M 64k")
	qemutest.Tool(t, "xz")
	if b, err := exec.Command("sh", "-c", `xz -k -T2 --block-size=1MiB "$0"`, base).CombinedOutput(); err != nil {
		t.Fatalf("xz: %v %s", err, b)
	}
	out := t.TempDir()
	for _, noRange := range []bool{false, true} {
		name := map[bool]string{false: "range", true: "no-range"}[noRange]
		t.Run(name, func(t *testing.T) {
			root := remoteServer(t, dir, noRange)
			url := root + "/base.qcow2?sig=s3cr3t"
			for _, args := range [][]string{{"map", "--output=json"}, {"checksum"}, {"info", "--output=json"}} {
				want, _, _ := vdisk(t, append(args, base)...)
				got, stderr, code := vdisk(t, append(args, url)...)
				if strings.Contains(got+stderr, "s3cr3t") {
					t.Errorf("vdisk %v shows the query: %s %s", args, got, stderr)
				}
				got = strings.ReplaceAll(got, root+"/base.qcow2?REDACTED", base)
				if args[0] == "info" { // actual-size: a URL has none
					got, want = dropLine(got, "actual-size"), dropLine(want, "actual-size")
				}
				if code != 0 || got != want {
					t.Errorf("vdisk %v %s: exit %d %s\n got %q\nwant %q", args, url, code, stderr, got, want)
				}
			}
			if _, stderr, code := vdisk(t, "compare", url, base); code != 0 {
				t.Errorf("compare: exit %d %s", code, stderr)
			}
			for _, src := range []string{url, root + "/base.qcow2.xz?sig=s3cr3t", "file://" + base} {
				dst := filepath.Join(out, name+".raw")
				if _, stderr, code := vdisk(t, "convert", "-O", "raw", src, dst); code != 0 {
					t.Fatalf("convert %s: %s", src, stderr)
				}
				qemutest.RequireSame(t, "qcow2", base, "raw", dst)
			}
			topURL := root + "/top.qcow2?sig=s3cr3t"
			_, stderr, code := vdisk(t, "convert", "-O", "qcow2", topURL, filepath.Join(out, "denied.qcow2"))
			if code == 0 || !strings.Contains(stderr, "--references=any") || strings.Contains(stderr, "s3cr3t") {
				t.Errorf("a remote backing file under the default policy: exit %d %q", code, stderr)
			}
			flat := filepath.Join(out, name+".top.qcow2")
			if _, stderr, code := vdisk(t, "--references=any", "convert", "-O", "qcow2", topURL, flat); code != 0 {
				t.Fatalf("--references=any: %s", stderr)
			}
			qemutest.RequireSame(t, "qcow2", top, "qcow2", flat)
		})
	}
	// The file-system commands and check read a URL as a file.
	example, err := filepath.Abs("../../testdata/example.qcow2")
	if err != nil {
		t.Fatal(err)
	}
	exRoot := remoteServer(t, filepath.Dir(example), false)
	for _, args := range [][]string{{"ls", "-R"}, {"check"}} {
		want, _, _ := vdisk(t, append(args, example)...)
		got, stderr, code := vdisk(t, append(args, exRoot+"/example.qcow2?sig=s3cr3t")...)
		if code != 0 || got != want {
			t.Errorf("vdisk %v over HTTP: exit %d %s\n got %q\nwant %q", args, code, stderr, got, want)
		}
	}
	_, stderr, code := vdisk(t, "info", remoteServer(t, dir, false)+"/missing.qcow2?sig=s3cr3t")
	if code == 0 || !strings.Contains(stderr, "No such file or directory") || strings.Contains(stderr, "s3cr3t") {
		t.Errorf("a missing object: exit %d %q", code, stderr)
	}
}

// dropLine removes the lines containing key.
func dropLine(s, key string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.Contains(l, key) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
