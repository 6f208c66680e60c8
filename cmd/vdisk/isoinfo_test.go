package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// TestInfoISOAsRaw: info reports an ISO 9660 image (made by xorriso) as
// raw, exactly as qemu-img does in every field qemu-img prints, with the
// ISO details in format-specific; human output starts as qemu-img's; the
// iso subcommands and -f iso still see an ISO.
func TestInfoISOAsRaw(t *testing.T) {
	t.Parallel()
	xorriso, err := exec.LookPath("xorriso")
	if err != nil {
		t.Skip("xorriso not installed")
	}
	dir := t.TempDir()
	content := filepath.Join(dir, "content")
	if err := os.MkdirAll(content, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(content, "meta-data"), []byte("instance-id: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	iso := filepath.Join(dir, "cidata.iso")
	if out, err := exec.Command(xorriso, "-as", "mkisofs", "-quiet", "-V", "cidata", "-J", "-R", "-o", iso, content).CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v %s", err, out)
	}
	for _, args := range [][]string{{"info", "--output=json", iso}, {"info", "-f", "raw", "--output=json", iso}} {
		want := map[string]any{}
		if err := json.Unmarshal([]byte(qemutest.Img(t, args...)), &want); err != nil {
			t.Fatal(err)
		}
		out, stderr, code := vdisk(t, args...)
		got := map[string]any{}
		if code != 0 || json.Unmarshal([]byte(out), &got) != nil {
			t.Fatalf("vdisk %v: exit %d %s %s", args, code, out, stderr)
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("vdisk %v: %s = %v, qemu-img %v", args, k, got[k], v)
			}
		}
		spec, _ := got["format-specific"].(map[string]any)
		data, _ := spec["data"].(map[string]any)
		if len(args) == 3 && (spec["type"] != "iso" || data["volume-id"] != "cidata" || data["joliet"] != true) {
			t.Errorf("vdisk %v: format-specific %v", args, got["format-specific"])
		}
	}
	want := strings.Split(qemutest.Img(t, "info", iso), "\n")
	out, _, _ := vdisk(t, "info", iso)
	got := strings.Split(out, "\n")
	for i := range 4 {
		if i >= len(got) || got[i] != want[i] {
			t.Errorf("human line %d: vdisk %q, qemu-img %q", i, got[i], want[i])
		}
	}
	if out, stderr, code := vdisk(t, "iso", "ls", iso); code != 0 || !strings.Contains(out, "meta-data") {
		t.Errorf("iso ls: exit %d %q %s", code, out, stderr)
	}
	if out, _, code := vdisk(t, "map", "-f", "iso", "--output=json", iso); code != 0 || !strings.Contains(out, `"data": true`) {
		t.Errorf("map -f iso: exit %d %q", code, out)
	}
}
