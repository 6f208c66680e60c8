package main

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
)

// filesCase says whether the inside-the-disk comparisons run: with -pairs
// unset, or when -pairs names "files" (`go run ./bench -pairs files
// -iso=false` runs them alone).
func filesCase(only string) bool {
	if only == "" {
		return true
	}
	for _, w := range strings.Split(only, ",") {
		if w == "files" {
			return true
		}
	}
	return false
}

// benchFiles times, on the workload: extracting the whole ext4 tree
// (vdisk extract against debugfs rdump) and a FAT32 copy of it (against
// mcopy -s); and convert --used-only against a plain convert of a copy of
// the workload whose deleted files left their data in free blocks.
func benchFiles(vdisk, work, base string, size int64, runs int) {
	out := filepath.Join(work, "extract-out")
	var v, q []sample
	for i := 0; i < runs; i++ {
		v = append(v, timedDir(out, vdisk, "extract", base, "/", out))
		q = append(q, timedDir(out, "debugfs", "-R", "rdump / "+out, base))
	}
	report("extract ext4 (vs debugfs)", v, q)

	fat := filepath.Join(work, fmt.Sprintf("workload-%d.fat", size))
	if _, err := os.Stat(fat); err != nil {
		run("truncate", "-s", fmt.Sprint(size), fat)
		run("mkfs.fat", "-F", "32", fat)
		tree := workloadTree(work, size)
		ents, _ := os.ReadDir(tree)
		args := []string{"-s", "-i", fat}
		for _, e := range ents {
			args = append(args, filepath.Join(tree, e.Name()))
		}
		run("mcopy", append(args, "::")...)
	}
	v, q = nil, nil
	for i := 0; i < runs; i++ {
		v = append(v, timedDir(out, vdisk, "extract", fat, "/", out))
		q = append(q, timedDir(out, "mcopy", "-s", "-n", "-i", fat, "::*", out))
	}
	report("extract FAT32 (vs mcopy)", v, q)

	deleted := filepath.Join(work, fmt.Sprintf("workload-%d-deleted.raw", size))
	if _, err := os.Stat(deleted); err != nil {
		run("cp", "--sparse=always", base, deleted)
		// Delete the files of every third directory of the tree (one
		// debugfs run): their data stays in the now free blocks.
		tree := workloadTree(work, size)
		var cmds strings.Builder
		for i := 0; i < 23; i += 3 {
			dir := fmt.Sprintf("d%02d", i)
			files, _ := os.ReadDir(filepath.Join(tree, dir))
			for _, f := range files {
				fmt.Fprintf(&cmds, "rm /%s/%s\n", dir, f.Name())
			}
		}
		script := filepath.Join(work, "delete.debugfs")
		if err := os.WriteFile(script, []byte(cmds.String()), 0o644); err != nil {
			log.Fatal(err)
		}
		run("debugfs", "-w", "-f", script, deleted)
	}
	outImg := filepath.Join(work, "usedonly.qcow2")
	v, q = timedPair(runs, cmd(outImg, vdisk, "convert", "--used-only", "-f", "raw", "-O", "qcow2", deleted, outImg),
		cmd(outImg, vdisk, "convert", "-f", "raw", "-O", "qcow2", deleted, outImg))
	report("convert --used-only (vs plain)", v, q)
}

// timedDir is timed for a command that writes the directory out.
func timedDir(out, name string, args ...string) sample {
	os.RemoveAll(out)
	os.MkdirAll(out, 0o755)
	s := timed(filepath.Join(out, "none"), name, args...)
	os.RemoveAll(out)
	return s
}
