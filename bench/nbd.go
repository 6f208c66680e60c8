package main

import (
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// nbdCase says whether the NBD comparisons run: always with -pairs unset,
// else when -pairs names "nbd" (`go run ./bench -pairs nbd -iso=false` runs
// them alone).
func nbdCase(only string) bool {
	if only == "" {
		return true
	}
	for _, w := range strings.Split(only, ",") {
		if w == "nbd" {
			return true
		}
	}
	return false
}

// benchNBD times, on the workload:
//   - nbdcopy reading the qcow2 workload served by `vdisk serve` against
//     the same file served by `qemu-nbd` (the "vdisk"/"qemu" columns are the
//     servers; RSS is nbdcopy's);
//   - `vdisk convert` against `qemu-img convert` reading the raw workload
//     from one nbdkit file server, to qcow2 and to raw.
func benchNBD(vdisk, work, base string, runs int) {
	for _, tool := range []string{"nbdcopy", "nbdkit", "qemu-nbd", "nbdinfo"} {
		if _, err := exec.LookPath(tool); err != nil {
			log.Printf("nbd: %s not found; skipped", tool)
			return
		}
	}
	src := source(work, base, "qcow2")
	dir := filepath.Join(work, "nbd")
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Fatal(err)
	}
	vsock, qsock, ksock := filepath.Join(dir, "vdisk.sock"), filepath.Join(dir, "qemu-nbd.sock"), filepath.Join(dir, "nbdkit.sock")
	stop := []func(){
		startNBD(vsock, vdisk, "serve", "--read-only", "--persistent", "--shared", "8", "--socket", vsock, src),
		startNBD(qsock, "qemu-nbd", "--read-only", "--persistent", "--shared=8", "-f", "qcow2", "-k", qsock, src),
		startNBD(ksock, "nbdkit", "--foreground", "-U", ksock, "file", base),
	}
	defer func() {
		for _, s := range stop {
			s()
		}
	}()
	out := filepath.Join(work, "nbd-out.raw")
	v, q := timedPair(runs, cmd(out, "nbdcopy", "nbd+unix:///?socket="+vsock, out), cmd(out, "nbdcopy", "nbd+unix:///?socket="+qsock, out))
	report("nbdcopy ← serve qcow2", v, q)
	url := "nbd+unix:///?socket=" + ksock
	for _, to := range []string{"qcow2", "raw"} {
		out := filepath.Join(work, "nbd-out."+to)
		args := []string{"convert", "-f", "raw", "-O", to, url, out}
		v, q = timedPair(runs, cmd(out, append([]string{vdisk}, args...)...), cmd(out, append([]string{"qemu-img"}, args...)...))
		report("nbdkit→"+to+" (convert)", v, q)
	}
}

// startNBD starts a server listening on sock and waits (60 s at most)
// until an NBD client can connect; the returned function stops it.
func startNBD(sock, name string, args ...string) func() {
	cmd := exec.Command(name, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		log.Fatalf("%s: %v", name, err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for exec.Command("nbdinfo", "--can", "connect", "nbd+unix:///?socket="+sock).Run() != nil {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			log.Fatalf("%s does not serve %s after 60 s", name, sock)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}
}
