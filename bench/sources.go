package main

import (
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// sourcesCase says whether the source comparisons run: always with -pairs
// unset, else when -pairs names "sources" (all of them) or one of
// "sources-xz", "sources-zst", "sources-http" (`go run ./bench -pairs
// sources -iso=false` runs them alone).
func sourcesCase(only, name string) bool {
	if only == "" {
		return true
	}
	for _, w := range strings.Split(only, ",") {
		if w == "sources" || w == name {
			return true
		}
	}
	return false
}

// benchSources times, on the workload:
//   - `vdisk convert -O raw` of a .qcow2.xz written by `xz -T2
//     --block-size=4MiB` (read in place through the block index) against
//     `xz -dc` to a file then `qemu-img convert -O raw` of it;
//   - `vdisk convert -O qcow2` of a .raw.zst written by `zstd -T2` (one
//     frame: spooled) against `zstd -dc` to a file then `qemu-img convert
//     -O qcow2`;
//   - `vdisk convert -O raw` of the qcow2 workload over HTTP range
//     requests from a loopback server in this process, against the same
//     conversion of the local file (the "qemu" columns are the local run).
//
// The intermediate file of the decompress-then-convert runs is removed in
// the run; a spool is on disk and not in the RSS.
func benchSources(vdisk, work, base string, runs int, only string) {
	qcow := source(work, base, "qcow2")
	if sourcesCase(only, "sources-xz") {
		xzFile := filepath.Join(work, "src.qcow2.xz")
		if _, err := os.Stat(xzFile); err != nil {
			run("sh", "-c", `xz -c -T2 --block-size=4MiB "$0" > "$1"`, qcow, xzFile)
		}
		out, tmp := filepath.Join(work, "out-xz.raw"), filepath.Join(work, "tmp-xz.qcow2")
		v, q := timedPair(runs, cmd(out, vdisk, "convert", "-O", "raw", xzFile, out),
			cmd(out, "sh", "-c", `xz -dc "$0" > "$1" && qemu-img convert -f qcow2 -O raw "$1" "$2"; rc=$?; rm -f "$1"; exit $rc`, xzFile, tmp, out))
		report("qcow2.xz→raw (vs xz -dc)", v, q)
	}
	if sourcesCase(only, "sources-zst") {
		zst := filepath.Join(work, "src.raw.zst")
		if _, err := os.Stat(zst); err != nil {
			run("sh", "-c", `zstd -q -T2 -c "$0" > "$1"`, base, zst)
		}
		out, tmp := filepath.Join(work, "out-zst.qcow2"), filepath.Join(work, "tmp-zst.raw")
		v, q := timedPair(runs, cmd(out, vdisk, "convert", "-O", "qcow2", zst, out),
			cmd(out, "sh", "-c", `zstd -q -dc "$0" > "$1" && qemu-img convert -f raw -O qcow2 "$1" "$2"; rc=$?; rm -f "$1"; exit $rc`, zst, tmp, out))
		report("raw.zst→qcow2 (vs zstd -dc)", v, q)
	}
	if sourcesCase(only, "sources-http") {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			log.Fatal(err)
		}
		srv := &http.Server{Handler: http.FileServer(http.Dir(filepath.Dir(qcow)))}
		go srv.Serve(ln)
		defer srv.Close()
		url := fmt.Sprintf("http://%s/%s?sig=bench", ln.Addr(), filepath.Base(qcow))
		out := filepath.Join(work, "out-http.raw")
		v, q := timedPair(runs, cmd(out, vdisk, "convert", "-O", "raw", url, out), cmd(out, vdisk, "convert", "-O", "raw", qcow, out))
		report("http qcow2→raw (vs local)", v, q)
	}
}
