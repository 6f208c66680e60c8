package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

func TestMapVisual(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := sparseRaw(t, dir) // data at 0-4k, 10M-12M, 40000k: 64 MiB
	out, errs, code := vdisk(t, "map", "--visual", "--width", "32", "--rows", "2", src)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Split(out, "\n")
	// 64 cells of 1 MiB: cells 0, 10, 11 and 39 hold data.
	// Raw holes are zero (recorded as holes), as qemu-img map says.
	want0 := "█░░░░░░░░░██░░░░░░░░░░░░░░░░░░░░"
	want1 := "░░░░░░░█░░░░░░░░░░░░░░░░░░░░░░░░"
	if !strings.Contains(lines[1], "│"+want0+"│") || !strings.Contains(lines[2], "│"+want1+"│") {
		t.Errorf("picture rows:\n%s\nwant %s / %s", out, want0, want1)
	}
	// The legend's data total is what qemu-img map counts as data.
	var ranges []struct {
		Length int64 `json:"length"`
		Data   bool  `json:"data"`
	}
	if err := json.Unmarshal([]byte(qemutest.Img(t, "map", "--output=json", "-f", "raw", src)), &ranges); err != nil {
		t.Fatal(err)
	}
	var data int64
	for _, r := range ranges {
		if r.Data {
			data += r.Length
		}
	}
	if want := fmt.Sprintf("(%d bytes)", data); data == 0 || !strings.Contains(out, want) {
		t.Errorf("legend lacks the data total %s:\n%s", want, out)
	}
	svg := filepath.Join(dir, "map.svg")
	if _, errs, code := vdisk(t, "map", "--visual="+svg, src); code != 0 {
		t.Fatalf("svg: exit %d: %s", code, errs)
	}
	if b, err := os.ReadFile(svg); err != nil || !strings.HasPrefix(string(b), "<svg ") {
		t.Fatalf("svg file: %v %.40q", err, b)
	}
	bad := filepath.Join(dir, "map.txt")
	if _, errs, code := vdisk(t, "map", "--visual="+bad, src); code != 1 || !strings.Contains(errs, ".svg or .png") {
		t.Errorf("bad picture name: exit %d: %s", code, errs)
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Errorf("a refused picture left %s", bad)
	}
}
