package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// startServer runs a server command (vdisk serve, nbdkit, qemu-nbd) that
// listens on sock, and waits (at most 20 s) until it prints readyLine on
// stderr or, when readyLine is "", until the socket accepts an NBD client.
// The server is stopped with SIGTERM when the test ends.
func startServer(t *testing.T, sock string, cmd *exec.Cmd, readyLine string) string {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Lines go to the waiting loop below until it is done, then are
	// dropped: a server logging errors must never block on its stderr.
	lines := make(chan string)
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ready:
			}
		}
		close(lines)
	}()
	defer close(ready)
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Error("server did not stop on SIGTERM within 20 s")
		}
	})
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if readyLine == "" && exec.Command("nbdinfo", "--can", "connect", "nbd+unix:///?socket="+sock).Run() == nil {
			return ""
		}
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("%s exited before serving", cmd.Path)
			}
			t.Logf("%s: %s", filepath.Base(cmd.Path), line)
			if readyLine != "" && strings.Contains(line, readyLine) {
				return line
			}
		case <-tick.C:
		case <-deadline:
			t.Fatalf("%s does not serve %s after 20 s", cmd.Path, sock)
		}
	}
}

// vdiskServe starts `vdisk serve` (this test binary as the CLI) on a unix
// socket and returns the export's URL.
func vdiskServe(t *testing.T, args ...string) string {
	t.Helper()
	qemutest.Tool(t, "nbdinfo")
	sock := filepath.Join(t.TempDir(), "vdisk.sock")
	cmd := exec.Command(os.Args[0], append([]string{"serve", "--persistent", "--socket", sock}, args...)...)
	cmd.Env = append(os.Environ(), "VDISK_TEST_MAIN=1")
	startServer(t, sock, cmd, "vdisk: serving")
	return "nbd+unix:///?socket=" + sock
}

// nbdkit starts nbdkit with a plugin and its arguments on a unix socket.
func nbdkit(t *testing.T, args ...string) string {
	t.Helper()
	qemutest.Tool(t, "nbdkit")
	sock := filepath.Join(t.TempDir(), "nbdkit.sock")
	cmd := exec.Command("nbdkit", append([]string{"--foreground", "--exit-with-parent", "-U", sock}, args...)...)
	startServer(t, sock, cmd, "")
	return "nbd+unix:///?socket=" + sock
}

// mapSpans is a map in JSON (vdisk's or qemu-img's) merged into runs of
// equal data/zero status; depth and host offsets are not compared.
func mapSpans(t *testing.T, out string) []string {
	t.Helper()
	var m []struct {
		Start, Length int64
		Data, Zero    bool
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("map JSON: %v\n%s", err, out)
	}
	var spans []string
	var start, end int64
	var data bool
	for i, e := range m {
		if i > 0 && e.Data == data && e.Start == end {
			end += e.Length
			continue
		}
		if i > 0 {
			spans = append(spans, spanString(start, end, data))
		}
		start, end, data = e.Start, e.Start+e.Length, e.Data
	}
	if len(m) > 0 {
		spans = append(spans, spanString(start, end, data))
	}
	return spans
}

func spanString(start, end int64, data bool) string {
	kind := "zero"
	if data {
		kind = "data"
	}
	return kind + ":" + strconv.FormatInt(start, 10) + "-" + strconv.FormatInt(end, 10)
}

// chainImage makes a qcow2 over a vmdk over a vmdk, each layer written by
// qemu-io: a chain of mixed formats.
func chainImage(t *testing.T, dir string) string {
	t.Helper()
	base := filepath.Join(dir, "base.vmdk")
	qemutest.Img(t, "create", "-q", "-f", "vmdk", base, "48M")
	qemutest.IO(t, "vmdk", base, "write -P 0x33 2M 2M", "write -P 0x44 30M 1M")
	mid := filepath.Join(dir, "mid.vmdk")
	qemutest.Img(t, "create", "-q", "-f", "vmdk", "-b", "base.vmdk", "-F", "vmdk", mid)
	qemutest.IO(t, "vmdk", mid, "write -P 0x55 20M 1M")
	top := filepath.Join(dir, "top.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", "-b", "mid.vmdk", "-F", "vmdk", top)
	qemutest.IO(t, "qcow2", top, "write -P 0x5a 0 1M", "write -z 2M 512k", "write -P 0x11 10M 64k", "write -P 0x66 47M 4k")
	return top
}

// TestServeJudgedByQemu: `vdisk serve` of a chain of mixed formats, read by
// qemu-img convert (equal to converting the file), qemu-img map (equal to
// vdisk's map of the file), nbdinfo --map and nbdcopy.
func TestServeJudgedByQemu(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	top := chainImage(t, dir)
	url := vdiskServe(t, "--read-only", top)
	want := qemutest.ToRaw(t, "qcow2", top)

	got := filepath.Join(dir, "got.raw")
	qemutest.Img(t, "convert", "-f", "raw", "-O", "raw", url, got)
	requireSameBytes(t, got, want)

	copied := filepath.Join(dir, "copied.raw")
	if r := qemutest.Exec(t, "nbdcopy", url, copied); r.Code != 0 {
		t.Fatalf("nbdcopy: exit %d: %s", r.Code, r.Stderr)
	}
	requireSameBytes(t, copied, want)

	vmap, stderr, code := vdisk(t, "map", "--output=json", top)
	if code != 0 {
		t.Fatalf("vdisk map: %s", stderr)
	}
	wantSpans := mapSpans(t, vmap)
	if got := mapSpans(t, qemutest.Img(t, "map", "--output=json", "-f", "raw", url)); !equalStrings(got, wantSpans) {
		t.Errorf("qemu-img map through NBD:\n got %v\nwant %v (vdisk map of the file)", got, wantSpans)
	}
	if got := mapSpans(t, qemutest.Img(t, "map", "--output=json", top)); !equalStrings(got, wantSpans) {
		t.Errorf("qemu-img map of the file %v differs from vdisk's %v", got, wantSpans)
	}
}

func equalStrings(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

func requireSameBytes(t *testing.T, got, want string) {
	t.Helper()
	if r := qemutest.Exec(t, "cmp", got, want); r.Code != 0 {
		t.Fatalf("%s differs from %s: %s%s", got, want, r.Stdout, r.Stderr)
	}
}

// TestServeWritableQcow2: qemu-io writes through `vdisk serve` into a
// qcow2; after the server stops, qemu-img check is clean and the image
// equals one given the same writes by qemu-io directly.
func TestServeWritableQcow2(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "w.qcow2")
	ref := filepath.Join(dir, "ref.qcow2")
	for _, p := range []string{path, ref} {
		qemutest.Img(t, "create", "-q", "-f", "qcow2", p, "32M")
		qemutest.IO(t, "qcow2", p, "write -P 0x5a 0 2M")
	}
	cmds := []string{"write -P 0x77 1M 2M", "write -z 8M 1M", "write -z -u 0 64k", "discard 1536k 64k", "write -P 0x99 31M 1M", "flush"}
	sock := filepath.Join(dir, "w.sock")
	cmd := exec.Command(os.Args[0], "serve", "--socket", sock, path)
	cmd.Env = append(os.Environ(), "VDISK_TEST_MAIN=1")
	startServer(t, sock, cmd, "vdisk: serving")
	qemutest.IO(t, "raw", "nbd+unix:///?socket="+sock, cmds...)
	// Without --persistent the server exits when its last client has gone.
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("vdisk serve: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("vdisk serve did not exit after its last client")
	}
	qemutest.IO(t, "qcow2", ref, cmds...)
	qemutest.RequireClean(t, "qcow2", path)
	qemutest.RequireSame(t, "qcow2", path, "qcow2", ref)
}

// TestNBDSourcesAndTarget: NBD exports of nbdkit (memory, file) and
// qemu-nbd as sources of info, map, compare, checksum and convert, and as
// a convert target; the other tools judge.
func TestNBDSourcesAndTarget(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	top := chainImage(t, dir)
	flat := qemutest.ToRaw(t, "qcow2", top)

	mem := nbdkit(t, "memory", "48M")
	if _, stderr, code := vdisk(t, "convert", "-O", "raw", top, mem); code != 0 {
		t.Fatalf("vdisk convert into nbdkit memory: %s", stderr)
	}
	// nbdcopy reads back what vdisk wrote.
	back := filepath.Join(dir, "back.raw")
	if r := qemutest.Exec(t, "nbdcopy", mem, back); r.Code != 0 {
		t.Fatalf("nbdcopy: %s", r.Stderr)
	}
	requireSameBytes(t, back, flat)
	// nbdkit's memory plugin reports what was zeroed as holes: vdisk's map
	// through NBD is qemu-img's.
	vmap, stderr, code := vdisk(t, "map", "--output=json", mem)
	if code != 0 {
		t.Fatalf("vdisk map %s: %s", mem, stderr)
	}
	if got, want := mapSpans(t, vmap), mapSpans(t, qemutest.Img(t, "map", "--output=json", "-f", "raw", mem)); !equalStrings(got, want) {
		t.Errorf("vdisk map through NBD %v, qemu-img map %v", got, want)
	}
	info, stderr, code := vdisk(t, "info", "--output=json", mem)
	if code != 0 || !strings.Contains(info, `"virtual-size": 50331648`) {
		t.Errorf("vdisk info %s: exit %d %s\n%s", mem, code, stderr, info)
	}
	// The human form is qemu-img's but for the image line (qemu rewrites
	// the URL).
	dropImage := func(s string) string { return s[strings.Index(s, "\n")+1:] }
	human, stderr, code := vdisk(t, "info", mem)
	if code != 0 {
		t.Fatalf("vdisk info %s: %s", mem, stderr)
	}
	if got, want := dropImage(human), dropImage(qemutest.Img(t, "info", mem)); got != want {
		t.Errorf("vdisk info of an export:\n%s\nqemu-img info:\n%s", got, want)
	}
	if out, stderr, code := vdisk(t, "compare", top, mem); code != 0 {
		t.Errorf("vdisk compare file and export: exit %d: %s%s", code, out, stderr)
	}
	sumFile, _, _ := vdisk(t, "checksum", top)
	sumNBD, stderr, code := vdisk(t, "checksum", mem)
	if code != 0 || strings.Fields(sumNBD)[0] != strings.Fields(sumFile)[0] {
		t.Errorf("checksum through NBD %q (%s), of the file %q", sumNBD, stderr, sumFile)
	}

	file := nbdkit(t, "file", flat)
	qnbdSock := filepath.Join(t.TempDir(), "qemu-nbd.sock")
	qemutest.Tool(t, "qemu-nbd")
	startServer(t, qnbdSock, exec.Command("qemu-nbd", "--persistent", "--shared=4", "-r", "-f", "qcow2", "-k", qnbdSock, top), "")
	for _, src := range []string{file, "nbd+unix:///?socket=" + qnbdSock} {
		out := filepath.Join(t.TempDir(), "out.qcow2")
		if _, stderr, code := vdisk(t, "convert", "-O", "qcow2", src, out); code != 0 {
			t.Fatalf("vdisk convert %s: %s", src, stderr)
		}
		qemutest.RequireClean(t, "qcow2", out)
		qemutest.RequireSame(t, "qcow2", out, "raw", flat)
		// Sparse: only the data the export reports was written (each data
		// run may grow to whole 64 KiB clusters).
		exportMap := qemutest.Img(t, "map", "--output=json", "-f", "raw", src)
		got, want := dataBytes(t, qemutest.Img(t, "map", "--output=json", out)), dataBytes(t, exportMap)
		if runs := int64(len(mapSpans(t, exportMap))); got > want+runs*128<<10 {
			t.Errorf("converted %s: %d bytes of data, the export has %d", src, got, want)
		}
	}
}

// TestNBDFaultySources: nbdkit's error filter makes reads fail (convert
// fails naming the offset, --salvage continues with zeros), its delay
// filter makes them slow (the result is still exact).
func TestNBDFaultySources(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	qemutest.Img(t, "create", "-q", "-f", "raw", src, "4M")
	qemutest.IO(t, "raw", src, "write -P 0x5a 0 4M")

	failing := nbdkit(t, "--filter=error", "file", src, "error-pread=EIO", "error-pread-rate=100%")
	out := filepath.Join(dir, "out.raw")
	_, stderr, code := vdisk(t, "convert", "-O", "raw", failing, out)
	if code == 0 || !strings.Contains(stderr, "read at") {
		t.Errorf("convert from an erroring export: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("a failed convert left %s", out)
	}
	// -f raw with --force-format: no probe reads the (failing) header.
	_, stderr, code = vdisk(t, "--force-format", "convert", "--salvage", "-f", "raw", "-O", "raw", failing, out)
	if code != 0 || !strings.Contains(stderr, "written as zeros") {
		t.Errorf("convert --salvage from an erroring export: exit %d: %s", code, stderr)
	}

	slow := nbdkit(t, "--filter=delay", "file", src, "rdelay=20ms")
	if _, stderr, code := vdisk(t, "convert", "-O", "raw", slow, out); code != 0 {
		t.Fatalf("convert from a slow export: %s", stderr)
	}
	requireSameBytes(t, out, src)
}

// dataBytes sums the data ranges of a JSON map.
func dataBytes(t *testing.T, out string) int64 {
	t.Helper()
	var m []struct {
		Length int64
		Data   bool
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("map JSON: %v\n%s", err, out)
	}
	var n int64
	for _, e := range m {
		if e.Data {
			n += e.Length
		}
	}
	return n
}

// TestNBDReferenceInsideImage: a qcow2 whose backing file is an NBD URL is
// refused under the default policy (naming --references=any) and followed
// with --references=any, where the result equals qemu-img's.
func TestNBDReferenceInsideImage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	base := filepath.Join(dir, "base.raw")
	qemutest.Img(t, "create", "-q", "-f", "raw", base, "8M")
	qemutest.IO(t, "raw", base, "write -P 0x33 1M 2M")
	url := nbdkit(t, "file", base)
	top := filepath.Join(dir, "top.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", "-u", "-b", url, "-F", "raw", top, "8M")
	qemutest.IO(t, "qcow2", top, "write -P 0x5a 0 64k")
	want := qemutest.ToRaw(t, "qcow2", top) // qemu follows the URL

	out := filepath.Join(dir, "out.raw")
	for _, policy := range []string{"local", "safe", "strict"} {
		_, stderr, code := vdisk(t, "--references="+policy, "convert", "-O", "raw", top, out)
		if code == 0 || !strings.Contains(stderr, "--references=any") && policy != "strict" {
			t.Errorf("--references=%s: exit %d: %s", policy, code, stderr)
		}
	}
	if _, stderr, code := vdisk(t, "--references=any", "convert", "-O", "raw", top, out); code != 0 {
		t.Fatalf("--references=any: %s", stderr)
	}
	requireSameBytes(t, out, want)
}

// TestRescueFromFailingExport: vdisk rescue reads an NBD export whose reads
// all fail (nbdkit's error filter): every byte is listed as unreadable, the
// output is written (zeros), and the mapfile says so to ddrescuelog when
// gddrescue is installed.
func TestRescueFromFailingExport(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	qemutest.Img(t, "create", "-q", "-f", "raw", src, "256k")
	qemutest.IO(t, "raw", src, "write -P 0x5a 0 256k")
	failing := nbdkit(t, "--filter=error", "file", src, "error-pread=EIO", "error-pread-rate=100%")
	out, mapfile := filepath.Join(dir, "out.raw"), filepath.Join(dir, "map")
	stdout, stderr, _ := vdisk(t, "rescue", "--retries", "0", "--mapfile", mapfile, failing, out)
	if !strings.Contains(stdout, "not rescued: 262144 bytes") {
		t.Errorf("rescue of a failing export: %s%s", stdout, stderr)
	}
	if _, err := exec.LookPath("ddrescuelog"); err == nil {
		if r := qemutest.Exec(t, "ddrescuelog", "-t", mapfile); r.Code != 0 || !strings.Contains(r.Stdout, "bad-sector") {
			t.Errorf("ddrescuelog -t: exit %d: %s%s", r.Code, r.Stdout, r.Stderr)
		}
	}
	good := nbdkit(t, "file", src)
	out2 := filepath.Join(dir, "out2.raw")
	if stdout, stderr, code := vdisk(t, "rescue", good, out2); code != 0 || !strings.Contains(stdout, "not rescued: 0 bytes") {
		t.Fatalf("rescue of a good export: exit %d: %s%s", code, stdout, stderr)
	}
	requireSameBytes(t, out2, src)
}

// TestServeTLSOverTCP: `vdisk serve --bind 127.0.0.1:0 --tls-cert --tls-key`
// prints the port it got; nbdinfo connects with nbds:// and the CA file, and
// a plain nbd:// client is refused.
func TestServeTLSOverTCP(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certPEM, keyPEM := qemutest.SelfSignedPEM(t)
	cert, key := filepath.Join(dir, "server-cert.pem"), filepath.Join(dir, "server-key.pem")
	for name, data := range map[string][]byte{cert: certPEM, key: keyPEM, filepath.Join(dir, "ca-cert.pem"): certPEM} {
		if err := os.WriteFile(name, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "a.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", img, "4M")
	qemutest.IO(t, "qcow2", img, "write -P 0x5a 0 1M")
	qemutest.Tool(t, "nbdinfo")
	cmd := exec.Command(os.Args[0], "serve", "--persistent", "-r", "--bind", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key, img)
	cmd.Env = append(os.Environ(), "VDISK_TEST_MAIN=1")
	line := startServer(t, "", cmd, "vdisk: serving")
	i := strings.Index(line, "nbds://127.0.0.1:")
	if i < 0 {
		t.Fatalf("no nbds:// URL in %q", line)
	}
	url := strings.TrimSuffix(line[i:], "/") + "/"
	r := qemutest.Exec(t, "nbdinfo", "--json", url+"?tls-certificates="+dir)
	if r.Code != 0 || !strings.Contains(r.Stdout, `"TLS": true`) || !strings.Contains(r.Stdout, `"export-size": 4194304`) {
		t.Errorf("nbdinfo over TLS: exit %d: %s%s", r.Code, r.Stdout, r.Stderr)
	}
	plain := "nbd://" + strings.TrimPrefix(url, "nbds://")
	if r := qemutest.Exec(t, "nbdinfo", "--size", plain); r.Code == 0 {
		t.Errorf("a plain client read the TLS export: %s", r.Stdout)
	}
}
