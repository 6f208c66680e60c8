package main

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
)

// chainsCase says whether the backing-chain comparisons run: always with
// -pairs unset, else when -pairs names "chains" (all four), "convert-B",
// "commit", "commit-vmdk" or "rebase" (`go run ./bench -pairs commit
// -iso=false` runs that one alone).
func chainsCase(only, name string) bool {
	if only == "" {
		return true
	}
	for _, w := range strings.Split(only, ",") {
		if w == "chains" || w == name {
			return true
		}
	}
	return false
}

// changedPercent writes a pattern over pct% of img (format f): one 1 MiB
// run in every 100/pct MiB, so the changes are spread over the disk.
func changedPercent(img, f string, size int64, pct int, pattern int) {
	args := []string{"-f", f}
	step := int64(100/pct) << 20
	for off := int64(0); off+(2<<20) <= size; off += step {
		args = append(args, "-c", fmt.Sprintf("write -q -P %d %d 1M", pattern, off+int64(pattern%4)<<18))
	}
	run("qemu-io", append(args, img)...)
}

// copyImage copies src to dst keeping holes (untimed setup of each run).
func copyImage(src, dst string) {
	run("cp", "--sparse=always", src, dst)
}

// benchChains times, on the workload in qcow2 (base.qcow2):
//   - convert -B base.qcow2 of the workload with 5% changed, from a raw
//     full image (the imaging case: only vdisk compares with the base, qemu
//     copies every allocated cluster) and from a qcow2 overlay holding the
//     5% (both tools copy the top layer);
//   - commit of an overlay that changes 10% into its base (emptying it);
//   - a safe rebase of an overlay (5%) from mid.qcow2 (5% over the base)
//     onto the base: both tools compare the two chains.
func benchChains(vdisk, work, base string, size int64, runs int, only string) {
	dir := filepath.Join(work, "chains")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Fatal(err)
	}
	p := func(n string) string { return filepath.Join(dir, n) }
	if _, err := os.Stat(p("base.qcow2")); err != nil {
		run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", base, p("base.qcow2"))
		copyImage(base, p("changed.raw"))
		changedPercent(p("changed.raw"), "raw", size, 5, 7)
		overlay("qcow2", "base.qcow2", p("over5.qcow2"))
		changedPercent(p("over5.qcow2"), "qcow2", size, 5, 7)
	}
	if chainsCase(only, "convert-B") {
		for _, src := range []struct{ name, path, f string }{
			{"convert -B (raw, 5%)", p("changed.raw"), "raw"},
			{"convert -B (overlay, 5%)", p("over5.qcow2"), "qcow2"},
		} {
			out := p("out.qcow2")
			args := []string{"convert", "-f", src.f, "-O", "qcow2", "-B", "base.qcow2", "-F", "qcow2", src.path, out}
			v, q := timedPair(runs, cmd(out, append([]string{vdisk}, args...)...), cmd(out, append([]string{"qemu-img"}, args...)...))
			report(src.name, v, q)
		}
	}
	c := chainRuns{vdisk: vdisk, dir: dir, size: size, runs: runs}
	if chainsCase(only, "commit") {
		c.commit("commit (10% overlay)", base, "qcow2")
	}
	if chainsCase(only, "commit-vmdk") {
		// In place since issue 12: a monolithicSparse base keeps its layout
		// and only the top's grains are written (both tools with -d:
		// qemu cannot empty a VMDK).
		c.commit("commit vmdk (10% overlay, -d)", base, "vmdk", "-d")
	}
	if chainsCase(only, "rebase") {
		if _, err := os.Stat(p("mid.qcow2")); err != nil {
			overlay("qcow2", "base.qcow2", p("mid.qcow2"))
			changedPercent(p("mid.qcow2"), "qcow2", size, 5, 5)
			overlay("qcow2", "mid.qcow2", p("rtop0.qcow2"))
			changedPercent(p("rtop0.qcow2"), "qcow2", size, 5, 6)
		}
		c.inPlace("rebase safe (5% over 5%)", p("rtop.qcow2"), func() { copyImage(p("rtop0.qcow2"), p("rtop.qcow2")) },
			"rebase", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", p("rtop.qcow2"))
	}
}

// overlay makes path, an empty image of format f over backing (a name
// relative to path's folder, of the same format).
func overlay(f, backing, path string) {
	run("qemu-img", "create", "-q", "-f", f, "-b", backing, "-F", f, path)
}

// chainRuns times the chain commands that change images in place, in dir.
type chainRuns struct {
	vdisk, dir string
	size       int64
	runs       int
}

// commit times committing an overlay that changes 10% into a copy of the
// workload (base, raw) in format f (made once as base.F, f being also
// the extension): the overlay and the copy are made anew before each run,
// untimed; extra are commit's flags beside -q and -f.
func (c chainRuns) commit(name, base, f string, extra ...string) {
	p := func(n string) string { return filepath.Join(c.dir, n) }
	if _, err := os.Stat(p("base." + f)); err != nil {
		run("qemu-img", "convert", "-f", "raw", "-O", f, base, p("base."+f))
	}
	cbase, ctop := p("cbase."+f), p("ctop."+f)
	prepare := func() {
		copyImage(p("base."+f), cbase)
		overlay(f, "cbase."+f, ctop)
		changedPercent(ctop, f, c.size, 10, 9)
	}
	args := append(append([]string{"commit", "-q"}, extra...), "-f", f, ctop)
	c.inPlace(name, cbase, prepare, args...)
}

// inPlace times args run by vdisk and by qemu-img, alternating, c.runs
// times each: prepare makes the files anew before each run (untimed), and
// changed is the file whose allocation is reported.
func (c chainRuns) inPlace(name, changed string, prepare func(), args ...string) {
	nothing := filepath.Join(c.dir, "none.out") // the commands write no new file
	var v, q []sample
	for i := 0; i < c.runs; i++ {
		for _, tool := range []string{c.vdisk, "qemu-img"} {
			prepare()
			s := timed(nothing, tool, args...)
			s.allocated = allocated(changed)
			if tool == c.vdisk {
				v = append(v, s)
			} else {
				q = append(q, s)
			}
		}
	}
	report(name, v, q)
}
