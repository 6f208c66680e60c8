package qemutest

import (
	"strconv"
	"strings"
	"testing"
)

// DirtyRanges returns the ranges qemu reports dirty in a qcow2 image's
// persistent bitmap: qemu-nbd exports it (-B NAME, read-only, started by
// nbdinfo on a private socket) and nbdinfo --map=qemu:dirty-bitmap:NAME
// lists it. Adjacent ranges are merged.
func DirtyRanges(t testing.TB, path, bitmap string) [][2]int64 {
	t.Helper()
	Tool(t, "qemu-nbd")
	r := Exec(t, "nbdinfo", "--map=qemu:dirty-bitmap:"+bitmap, "--", "[", "qemu-nbd", "-r", "-B", bitmap, "-f", "qcow2", path, "]")
	if r.Code != 0 {
		t.Fatalf("nbdinfo --map of bitmap %s in %s: exit %d: %s%s", bitmap, path, r.Code, r.Stdout, r.Stderr)
	}
	var out [][2]int64
	for _, line := range strings.Split(r.Stdout, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 || f[2] != "1" {
			continue
		}
		off, err1 := strconv.ParseInt(f[0], 10, 64)
		n, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("nbdinfo line %q", line)
		}
		if k := len(out); k > 0 && out[k-1][0]+out[k-1][1] == off {
			out[k-1][1] += n
			continue
		}
		out = append(out, [2]int64{off, n})
	}
	return out
}
