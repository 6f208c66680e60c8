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
		run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", p("over5.qcow2"))
		changedPercent(p("over5.qcow2"), "qcow2", size, 5, 7)
	}
	nothing := p("none.out") // commands that write no new file
	if chainsCase(only, "convert-B") {
		for _, src := range []struct{ name, path, f string }{
			{"convert -B (raw, 5%)", p("changed.raw"), "raw"},
			{"convert -B (overlay, 5%)", p("over5.qcow2"), "qcow2"},
		} {
			out := p("out.qcow2")
			var v, q []sample
			for i := 0; i < runs; i++ {
				args := []string{"convert", "-f", src.f, "-O", "qcow2", "-B", "base.qcow2", "-F", "qcow2", src.path, out}
				v = append(v, timed(out, vdisk, args...))
				q = append(q, timed(out, "qemu-img", args...))
			}
			report(src.name, v, q)
		}
	}
	if chainsCase(only, "commit") {
		var v, q []sample
		for i := 0; i < runs; i++ {
			for _, tool := range []string{vdisk, "qemu-img"} {
				copyImage(p("base.qcow2"), p("cbase.qcow2"))
				run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "cbase.qcow2", "-F", "qcow2", p("ctop.qcow2"))
				changedPercent(p("ctop.qcow2"), "qcow2", size, 10, 9)
				s := timed(nothing, tool, "commit", "-q", "-f", "qcow2", p("ctop.qcow2"))
				s.allocated = allocated(p("cbase.qcow2"))
				if tool == vdisk {
					v = append(v, s)
				} else {
					q = append(q, s)
				}
			}
		}
		report("commit (10% overlay)", v, q)
	}
	if chainsCase(only, "commit-vmdk") {
		// In place since issue 12: a monolithicSparse base keeps its layout
		// and only the top's grains are written (both tools with -d:
		// qemu cannot empty a VMDK).
		if _, err := os.Stat(p("base.vmdk")); err != nil {
			run("qemu-img", "convert", "-f", "raw", "-O", "vmdk", base, p("base.vmdk"))
		}
		var v, q []sample
		for i := 0; i < runs; i++ {
			for _, tool := range []string{vdisk, "qemu-img"} {
				copyImage(p("base.vmdk"), p("cbase.vmdk"))
				run("qemu-img", "create", "-q", "-f", "vmdk", "-b", "cbase.vmdk", "-F", "vmdk", p("ctop.vmdk"))
				changedPercent(p("ctop.vmdk"), "vmdk", size, 10, 9)
				s := timed(nothing, tool, "commit", "-q", "-d", "-f", "vmdk", p("ctop.vmdk"))
				s.allocated = allocated(p("cbase.vmdk"))
				if tool == vdisk {
					v = append(v, s)
				} else {
					q = append(q, s)
				}
			}
		}
		report("commit vmdk (10% overlay, -d)", v, q)
	}
	if chainsCase(only, "rebase") {
		if _, err := os.Stat(p("mid.qcow2")); err != nil {
			run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", p("mid.qcow2"))
			changedPercent(p("mid.qcow2"), "qcow2", size, 5, 5)
			run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", p("rtop0.qcow2"))
			changedPercent(p("rtop0.qcow2"), "qcow2", size, 5, 6)
		}
		var v, q []sample
		for i := 0; i < runs; i++ {
			for _, tool := range []string{vdisk, "qemu-img"} {
				copyImage(p("rtop0.qcow2"), p("rtop.qcow2"))
				s := timed(nothing, tool, "rebase", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", p("rtop.qcow2"))
				s.allocated = allocated(p("rtop.qcow2"))
				if tool == vdisk {
					v = append(v, s)
				} else {
					q = append(q, s)
				}
			}
		}
		report("rebase safe (5% over 5%)", v, q)
	}
}
