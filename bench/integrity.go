package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// integrityCase says whether the integrity comparisons (issue 13) run:
// with -pairs unset, or when -pairs names "integrity" (all of them) or one
// of "checksum", "hash", "rescue" (`go run ./bench -pairs checksum -iso=false`
// runs that one alone; "checksum-sparse" with -sparse the 20 GiB rows).
func integrityCase(only, name string) bool {
	if only == "" {
		return true
	}
	for _, w := range strings.Split(only, ",") {
		if w == "integrity" || w == name {
			return true
		}
	}
	return false
}

// shell runs a pipeline through sh (for the tools' side of a comparison).
func shell(script string) []string { return []string{"-c", script} }

// benchChecksum times vdisk checksum (blkhash, and --linear) against
// sha256sum of the raw file, and against qemu-img convert -O raw then
// sha256sum (qemu-img cannot write a pipe) for a qcow2 copy.
func benchChecksum(vdisk, work, base string, runs int) {
	none := filepath.Join(work, "none")
	tmp := filepath.Join(work, "sum-tmp.raw")
	qcow := source(work, base, "qcow2")
	sha := cmd(none, "sha256sum", base)
	v, q := timedPair(runs, cmd(none, vdisk, "checksum", base), sha)
	report("checksum raw (vs sha256sum)", v, q)
	v, q = timedPair(runs, cmd(none, vdisk, "checksum", "--linear", base), sha)
	report("checksum --linear (vs sha256sum)", v, q)
	v, q = timedPair(runs, cmd(none, vdisk, "checksum", qcow),
		cmd(tmp, append([]string{"sh"}, shell(fmt.Sprintf("qemu-img convert -f qcow2 -O raw %s %s && sha256sum %s", qcow, tmp, tmp))...)...))
	report("checksum qcow2 (vs qemu-img+sha256sum)", v, q)
}

// benchChecksumSparse is benchChecksum on the 20 GiB sparse image (-sparse;
// -pairs checksum-sparse alone): vdisk's time must follow the data.
func benchChecksumSparse(vdisk, work string, runs int) {
	none := filepath.Join(work, "none")
	tmp := filepath.Join(work, "sum-tmp.raw")
	big := makeSparse(work)
	var v, q, q2 []sample
	for i := 0; i < runs; i++ {
		alternately(i, func() { v = append(v, timed(none, vdisk, "checksum", big)) },
			func() { q = append(q, timed(none, "sha256sum", big)) })
		q2 = append(q2, timed(tmp, "sh", shell(fmt.Sprintf("qemu-img convert -f raw -O raw %s %s && sha256sum %s", big, tmp, tmp))...))
	}
	report("checksum 20G sparse (vs sha256sum)", v, q)
	report("checksum 20G sparse (vs qemu-img+sha)", v, q2)
}

// benchHash times convert --hash sha256 against the same convert without
// it: the "qemu" column is plain vdisk here, the ratio is the overhead.
func benchHash(vdisk, work, base string, runs int) {
	for _, to := range []string{"raw", "qcow2"} {
		out := filepath.Join(work, "hash-out."+to)
		v, q := timedPair(runs, cmd(out, vdisk, "convert", "--hash", "sha256", "-f", "raw", "-O", to, base, out),
			cmd(out, vdisk, "convert", "-f", "raw", "-O", to, base, out))
		report("convert→"+to+" --hash sha256 (vs none)", v, q)
	}
	fmt.Println("(--hash rows: the second column is vdisk convert without --hash, so the ratio is the hashing overhead)")
}

// benchRescue times vdisk rescue of a clean source against GNU ddrescue of
// the same file, both keeping a mapfile.
func benchRescue(vdisk, work, base string, runs int) {
	ddrescue, err := exec.LookPath("ddrescue")
	if err != nil {
		fmt.Println("rescue: ddrescue not found, skipped")
		return
	}
	out := filepath.Join(work, "rescue.raw")
	mapfile := filepath.Join(work, "rescue.map")
	v, q := timedPair(runs, cmd(out, vdisk, "rescue", "--mapfile", mapfile, base, out), cmd(out, ddrescue, "-q", base, out, mapfile))
	report("rescue clean (vs ddrescue)", v, q)
}
