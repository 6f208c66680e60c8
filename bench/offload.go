package main

import (
	"fmt"
	"os"
	"path/filepath"
)

// benchReflink times convert -C raw→raw of the workload inside dir, a
// directory on a reflink file system (XFS with reflink=1, btrfs): vdisk
// against qemu-img -C, with cp --sparse=always (which reflinks there too)
// as the floor. The workload is copied into dir once, unshared.
func benchReflink(vdisk, dir, base string, runs int) {
	src := filepath.Join(dir, "vdisk-bench-src.raw")
	if _, err := os.Stat(src); err != nil {
		run("cp", "--reflink=never", "--sparse=always", base, src+".tmp")
		run("mv", src+".tmp", src)
	}
	out := filepath.Join(dir, "vdisk-bench-out.raw")
	floor := filepath.Join(dir, "vdisk-bench-floor.copy")
	var v, q, f []sample
	for i := range runs {
		alternately(i, func() { v = append(v, timed(out, vdisk, "convert", "-C", "-f", "raw", "-O", "raw", src, out)) },
			func() { q = append(q, timed(out, "qemu-img", "convert", "-C", "-f", "raw", "-O", "raw", src, out)) })
		f = append(f, timed(floor, "cp", "--sparse=always", src, floor))
	}
	fmt.Println()
	reportFloor("raw→raw -C on "+filepath.Base(dir), v, q, f)
}
