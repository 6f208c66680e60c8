package qcow2

import (
	"os"
	"runtime"
	"syscall"
	"testing"

	"github.com/vdiskio/vdisk/formats"
)

// BenchmarkDecompressFile decodes every compressed cluster of the image
// named by VDISK_QCOW2_COMPRESSED (e.g. the bench's src.qcow2c, made by
// qemu-img convert -c) on one goroutine, from memory: the decoder's cost
// alone, without the reads and writes of a convert. Skipped without it.
// It reports the thread's CPU time (cpu-ns/op, cpu-MB/s) beside the wall
// time, as the machine is shared.
//
//	VDISK_QCOW2_COMPRESSED=/tmp/vdisk-bench/src.qcow2c go test -run - -bench DecompressFile ./qcow2
func BenchmarkDecompressFile(b *testing.B) {
	path := os.Getenv("VDISK_QCOW2_COMPRESSED")
	if path == "" {
		b.Skip("VDISK_QCOW2_COMPRESSED names no image")
	}
	img := openPath(b, path, formats.OpenOptions{}).(*Image)
	segs, err := img.mapRange(0, img.size, nil)
	if err != nil {
		b.Fatal(err)
	}
	var srcs [][]byte
	var total int64
	for _, s := range segs {
		if s.kind != segCompressed {
			continue
		}
		coff, csize := img.compressedRange(s.centry)
		src := make([]byte, min(csize, img.fileEnd-coff))
		if _, err := img.f.ReadAt(src, coff); err != nil {
			b.Fatal(err)
		}
		srcs = append(srcs, src)
		total += img.clusterSize
	}
	if len(srcs) == 0 {
		b.Skip("no compressed clusters")
	}
	dst := make([]byte, img.clusterSize, img.clusterSize+zstdSlackBytes)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.SetBytes(total)
	b.ResetTimer()
	start := threadCPU(b)
	for range b.N {
		for _, src := range srcs {
			if err := img.codec.decompress(dst, src); err != nil {
				b.Fatal(err)
			}
		}
	}
	cpu := threadCPU(b) - start
	b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(total)*float64(b.N)/(float64(cpu)/1e9)/1e6, "cpu-MB/s")
}

// threadCPU is the calling thread's user and system time, in nanoseconds.
func threadCPU(b *testing.B) int64 {
	const rusageThread = 1 // RUSAGE_THREAD
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
