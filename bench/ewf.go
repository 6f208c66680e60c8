package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ewfCase says whether the EWF comparisons run: always with -pairs unset,
// else when -pairs names "ewf" (`go run ./bench -pairs ewf -iso=false` runs
// them alone).
func ewfCase(only string) bool {
	if _, err := exec.LookPath("ewfacquire"); err != nil {
		return false
	}
	if only == "" {
		return true
	}
	for _, w := range strings.Split(only, ",") {
		if w == "ewf" {
			return true
		}
	}
	return false
}

// benchEWF times, on the workload, raw → E01 (vdisk convert -O ewf against
// ewfacquire -u, both deflate "fast" and hashing: ewfacquire MD5, vdisk MD5
// and SHA-1) and E01 → raw (vdisk convert against ewfexport -f raw, of an
// image ewfacquire made; ewfexport also hashes what it exports).
func benchEWF(vdisk, work, base string, runs int) {
	out := filepath.Join(work, "ewfout.E01")
	v, q := timedPair(runs, cmd(out, vdisk, "convert", "-f", "raw", "-O", "ewf", "-o", "compression=fast", base, out),
		cmd(out, "ewfacquire", "-u", "-q", "-c", "fast", "-t", strings.TrimSuffix(out, ".E01"), base))
	report("raw→E01 (vs ewfacquire)", v, q)

	src := filepath.Join(work, "src-ewf.E01")
	if _, err := os.Stat(src); err != nil {
		run("ewfacquire", "-u", "-q", "-c", "fast", "-t", strings.TrimSuffix(src, ".E01"), base)
	}
	raw := filepath.Join(work, "ewfraw.raw")
	v, q = timedPair(runs, cmd(raw, vdisk, "convert", "-f", "ewf", "-O", "raw", src, raw),
		cmd(raw, "ewfexport", "-u", "-q", "-f", "raw", "-t", strings.TrimSuffix(raw, ".raw"), src))
	report("E01→raw (vs ewfexport)", v, q)
	fmt.Println("(raw→E01: vdisk hashes MD5 and SHA-1, ewfacquire MD5; E01→raw: ewfexport hashes MD5, vdisk nothing)")
}
