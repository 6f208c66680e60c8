package main

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
)

// compressedCase says whether the compressed-output comparisons run: only
// when -pairs names "compressed" (`go run ./bench -pairs compressed
// -iso=false`), as they take minutes (qemu-img compresses on one core).
func compressedCase(only string) bool {
	for _, w := range strings.Split(only, ",") {
		if w == "compressed" {
			return true
		}
	}
	return false
}

// benchCompressed times `convert -c -O qcow2` and `-O vmdk -o
// subformat=streamOptimized` against qemu-img on two workloads: base64
// text (random bytes, base64-encoded: only entropy coding pays, the case
// where general-purpose fast encoders give up) and binaries (the regular
// files under /usr/bin and /usr/lib, concatenated in name order). Then a
// scaling table: vdisk with -m 1 and -m 2 against qemu-img's default.
func benchCompressed(vdisk, work string, runs int, textSize, binSize int64) {
	text := makeBase64(work, textSize)
	bin := makeBinaries(work, binSize)
	targets := []pair{
		{from: "raw", to: "qcow2", args: []string{"-c"}, name: "qcow2 -c"},
		{from: "raw", to: "vmdk", args: []string{"-o", "subformat=streamOptimized"}, name: "vmdk stream"},
	}
	fmt.Printf("\ncompressed outputs: b64 = %s of base64 text, bin = %s of binaries\n", mib(allocated(text)), mib(allocated(bin)))
	for _, w := range []struct{ name, path string }{{"b64", text}, {"bin", bin}} {
		for _, p := range targets {
			v, q := compareArgs(vdisk, work, w.path, p, nil, runs)
			report(w.name+" "+p.name, v, q)
		}
	}
	for _, p := range targets {
		for _, m := range []string{"1", "2"} {
			v, q := compareArgs(vdisk, work, text, p, []string{"-m", m}, runs)
			report("b64 "+p.name+" vdisk -m "+m, v, q)
		}
	}
}

// compareArgs times vdisk (with extra flags vdiskArgs) and qemu-img
// alternately, runs times each, on the same convert command line.
func compareArgs(vdisk, work, src string, p pair, vdiskArgs []string, runs int) (v, q []sample) {
	out := filepath.Join(work, "out."+p.to)
	args := append(append([]string{"convert", "-f", p.from, "-O", p.to}, p.args...), src, out)
	vargs := append(append([]string{"convert"}, vdiskArgs...), args[1:]...)
	return timedPair(runs, cmd(out, append([]string{vdisk}, vargs...)...), cmd(out, append([]string{"qemu-img"}, args...)...))
}

// makeOnce writes work/name once (a later run reuses it): fill writes the
// bytes into the new file.
func makeOnce(work, name string, fill func(f *os.File) error) string {
	path := filepath.Join(work, name)
	if _, err := os.Stat(path); err == nil {
		return path
	}
	f, err := os.Create(path)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	if err := fill(f); err != nil {
		log.Fatal(err)
	}
	return path
}

// makeBase64 writes (once) size bytes of base64 text of random bytes, in
// 76-column lines.
func makeBase64(work string, size int64) string {
	return makeOnce(work, fmt.Sprintf("base64-%d.raw", size), func(f *os.File) error {
		w := bufio.NewWriterSize(f, 1<<20)
		rng := rand.New(rand.NewChaCha8([32]byte{'b', '6', '4'}))
		raw := make([]byte, 57*1024) // 57 bytes make one 76-column line
		line := make([]byte, 77)
		for written := int64(0); written < size; {
			for i := range raw {
				raw[i] = byte(rng.Uint32())
			}
			for i := 0; i < len(raw) && written < size; i += 57 {
				base64.StdEncoding.Encode(line, raw[i:i+57])
				line[76] = '\n'
				n := min(int64(len(line)), size-written)
				if _, err := w.Write(line[:n]); err != nil {
					return err
				}
				written += n
			}
		}
		return w.Flush()
	})
}

// makeBinaries writes (once) up to size bytes of the regular files under
// /usr/bin and /usr/lib, in walk (name) order, cut to whole MiB.
func makeBinaries(work string, size int64) string {
	return makeOnce(work, fmt.Sprintf("binaries-%d.raw", size), func(f *os.File) error {
		var written int64
		for _, root := range []string{"/usr/bin", "/usr/lib"} {
			filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if err != nil || written >= size || !d.Type().IsRegular() {
					return nil
				}
				in, err := os.Open(p)
				if err != nil {
					return nil
				}
				defer in.Close()
				n, _ := io.Copy(f, io.LimitReader(in, size-written))
				written += n
				return nil
			})
		}
		return f.Truncate(written &^ (1<<20 - 1))
	})
}
