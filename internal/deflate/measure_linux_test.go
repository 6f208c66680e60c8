package deflate

import (
	"os"
	"syscall"
	"testing"
	"time"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestMeasure prints ratio and speed on files named by VDISK_DEFLATE_FILES (development aid).
func TestMeasure(t *testing.T) {
	files := os.Getenv("VDISK_DEFLATE_FILES")
	if files == "" {
		t.Skip("VDISK_DEFLATE_FILES not set")
	}
	for _, f := range splitList(files) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		data = data[:min(len(data), 16<<20)]
		for _, win := range windows() {
			for _, lv := range measureLevels() {
				e, _ := NewEncoder(lv, win)
				best := time.Duration(1 << 62)
				n := 0
				for range 3 {
					start := cpuTime()
					n = 0
					var buf []byte
					for off := 0; off < len(data); off += 65536 {
						out, ok, err := e.EncodeLimit(buf[:0], data[off:off+65536], 65536)
						if err != nil {
							t.Fatal(err)
						}
						if ok {
							n += len(out)
							buf = out
						} else {
							n += 65536
						}
					}
					best = min(best, cpuTime()-start)
				}
				el := best
				t.Logf("%s win %d level %d: ratio %.4f bytes %d %.1f MB/s cpu", f, win, lv, float64(n)/float64(len(data)), n, float64(len(data))/el.Seconds()/1e6)
			}
		}
	}
}

func splitList(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}

func windows() []int {
	if os.Getenv("VDISK_DEFLATE_W32") != "" {
		return []int{4096, 32768}
	}
	return []int{4096}
}

func measureLevels() []int {
	if os.Getenv("VDISK_DEFLATE_ALL") != "" {
		return []int{1, 2, 3, 4, 5, 6, 7, 8, 9}
	}
	return []int{1, 6}
}
