package main

import (
	"bufio"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// makeWorkload builds (once) an ext4 image of size bytes from a generated
// tree: about a third random bytes, a third text-like, a sixth all-zero
// files, then 64 MiB of explicitly written zeros in the image's tail.
func makeWorkload(work string, size int64) string {
	img := filepath.Join(work, fmt.Sprintf("workload-%d.raw", size))
	tree := workloadTree(work, size)
	if _, err := os.Stat(img); err == nil {
		return img
	}
	run("truncate", "-s", fmt.Sprint(size), img)
	run("mkfs.ext4", "-q", "-F", "-d", tree, img)
	writeZeros(img, size-96<<20, 64<<20)
	return img
}

// workloadTree generates (once) the file tree of the workload, kept for
// the ISO pair.
func workloadTree(work string, size int64) string {
	tree := filepath.Join(work, fmt.Sprintf("tree-%d", size))
	if _, err := os.Stat(tree); err == nil {
		return tree
	}
	rng := rand.New(rand.NewChaCha8([32]byte{'v', 'd', 'i', 's', 'k'}))
	budget := size * 55 / 100
	for i := 0; budget > 0; i++ {
		n := min(budget, int64(64<<10)<<rng.IntN(8)) // 64 KiB .. 8 MiB
		dir := filepath.Join(tree, fmt.Sprintf("d%02d", i%23))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			log.Fatal(err)
		}
		writeFile(filepath.Join(dir, fmt.Sprintf("f%05d", i)), n, i%6, rng)
		budget -= n
	}
	return tree
}

// writeFile writes n bytes of kind 0-1 random, 2-3 text, 4 zeros, 5 mixed.
func writeFile(path string, n int64, kind int, rng *rand.Rand) {
	f, err := os.Create(path)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	words := []string{"disk ", "image ", "cluster ", "sector ", "the ", "of ", "qcow2 ", "vmdk ", "block\n", "data "}
	buf := make([]byte, 4096)
	for written := int64(0); written < n; written += int64(len(buf)) {
		switch {
		case kind <= 1 || (kind == 5 && written%(1<<20) < 512<<10):
			for i := range buf {
				buf[i] = byte(rng.Uint32())
			}
		case kind <= 3 || kind == 5:
			buf = buf[:0]
			for len(buf) < 4096-8 {
				buf = append(buf, words[rng.IntN(len(words))]...)
			}
			buf = buf[:cap(buf)][:4096]
		default:
			clear(buf)
		}
		if _, err := w.Write(buf[:min(int64(len(buf)), n-written)]); err != nil {
			log.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		log.Fatal(err)
	}
}

func writeZeros(path string, off, n int64) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	zero := make([]byte, 1<<20)
	for ; n > 0; n -= int64(len(zero)) {
		if _, err := f.WriteAt(zero, off); err != nil {
			log.Fatal(err)
		}
		off += int64(len(zero))
	}
}

// makeSparse builds (once) a 20 GiB raw image with 1 MiB of random data
// every 256 MiB.
func makeSparse(work string) string {
	img := filepath.Join(work, "sparse-20G.raw")
	if _, err := os.Stat(img); err == nil {
		return img
	}
	f, err := os.Create(img)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	const size = 20 << 30
	if err := f.Truncate(size); err != nil {
		log.Fatal(err)
	}
	rng := rand.New(rand.NewChaCha8([32]byte{'s'}))
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; off += 256 << 20 {
		for i := range buf {
			buf[i] = byte(rng.Uint32())
		}
		if _, err := f.WriteAt(buf, off); err != nil {
			log.Fatal(err)
		}
	}
	return img
}
