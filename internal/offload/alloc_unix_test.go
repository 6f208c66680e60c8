//go:build unix

package offload

import (
	"os"
	"syscall"
	"testing"
)

// allocation is the bytes f occupies (st_blocks × 512) and its block size.
func allocation(t *testing.T, f *os.File) (bytes, block int64, ok bool) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512, int64(st.Blksize), true
}
