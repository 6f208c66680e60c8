package main

import (
	"encoding/binary"
	"fmt"
	"log"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"

	"github.com/vdiskio/vdisk/formats"
)

// benchScaling times dense zlib compression (raw→qcow2 -c of the workload)
// with -m 1, 2, 4 and 8 workers: throughput rises with the workers until
// the CPUs run out (the machine's count is printed beside the table).
// "cores" is CPU time over wall time, the CPUs the run kept busy: it shows
// whether a flat row is the engine's limit or the machine's (other load
// takes the CPUs: run with -priority on a busy machine). MiB/s is of the
// virtual size; "MiB/cpu-s" is the same per CPU second, which stays level
// when the workers add no overhead.
func benchScaling(vdisk, work, base string, size int64, runs int) {
	fmt.Printf("\nscaling: vdisk convert -c -O qcow2 (zlib) of the %s workload, %d CPUs, load %s\n", mib(size), numCPU(), loadAverage())
	fmt.Printf("%-4s %9s %9s %6s %10s %10s %8s %9s\n", "-m", "wall s", "cpu s", "cores", "MiB/s", "MiB/cpu-s", "speedup", "RSS")
	var first float64
	for _, m := range []int{1, 2, 4, 8} {
		out := filepath.Join(work, "scale.qcow2")
		var v []sample
		for range runs {
			v = append(v, timed(out, vdisk, "convert", "-c", "-m", fmt.Sprint(m), "-f", "raw", "-O", "qcow2", base, out))
		}
		mv := median(v)
		if first == 0 {
			first = mv.seconds
		}
		virtMiB := float64(size) / (1 << 20)
		fmt.Printf("%-4d %9.3f %9.3f %6.2f %10.1f %10.1f %8.2f %8.1fM\n", m, mv.seconds, mv.cpu, mv.cpu/mv.seconds,
			virtMiB/mv.seconds, virtMiB/max(mv.cpu, 0.001), first/mv.seconds, float64(peakRSS(v))/1024)
	}
}

// hugeStrideBytes is the spacing of the data blocks of the -huge image:
// 1 MiB of data every 100 MiB is 1% data.
const hugeStrideBytes = 100 << 20

// benchHuge converts a sparse image of the given size holding 1% data
// (raw→raw and raw→qcow2, vdisk against qemu-img, with the cp floor) and
// prints the time per GiB of data: the work follows the data, not the
// virtual size, and memory stays flat.
func benchHuge(vdisk, work, sizeText string, runs int) {
	size, err := formats.ParseSize(sizeText)
	if err != nil {
		log.Fatal(err)
	}
	src, data := makeHuge(work, size)
	fmt.Printf("\nhuge: %s sparse raw, %s data (1 MiB every 100 MiB)\n", sizeText, mib(data))
	for _, p := range []pair{{from: "raw", to: "raw"}, {from: "raw", to: "qcow2"}} {
		v, q, f := compare(vdisk, work, src, p, runs)
		reportFloor(p.String()+" "+sizeText+" 1% data", v, q, f)
		fmt.Printf("%-28s vdisk %.3f s per GiB of data, qemu-img %.3f\n", "", median(v).seconds/(float64(data)/(1<<30)),
			median(q).seconds/(float64(data)/(1<<30)))
	}
}

// makeHuge builds (once) the -huge image and returns its path and the
// bytes of data it holds.
func makeHuge(work string, size int64) (string, int64) {
	img := filepath.Join(work, fmt.Sprintf("huge-%d.raw", size))
	const block = 1 << 20
	data := (size + hugeStrideBytes - 1) / hugeStrideBytes * block
	if _, err := os.Stat(img); err == nil {
		return img, data
	}
	f, err := os.Create(img + ".tmp")
	if err != nil {
		log.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		log.Fatal(err)
	}
	rng := rand.New(rand.NewChaCha8([32]byte{'h'}))
	buf := make([]byte, block)
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	for off := int64(0); off < size; off += hugeStrideBytes {
		binary.LittleEndian.PutUint64(buf, uint64(off)) // every block differs
		n := min(int64(block), size-off)
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			log.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
	if err := os.Rename(img+".tmp", img); err != nil {
		log.Fatal(err)
	}
	return img, data
}

func numCPU() int { return runtime.NumCPU() }
