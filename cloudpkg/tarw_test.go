package cloudpkg

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// TestSparseTarGNU: the oldgnu sparse member writeSparseTar makes is
// extracted by GNU tar --sparse as the file it describes: no data at all,
// data up to the end (no closing fragment), and 100 runs (a map over five
// extension blocks).
func TestSparseTarGNU(t *testing.T) {
	many := []fragment{}
	for i := range 100 {
		many = append(many, fragment{Offset: int64(i) * 8192, Length: 1024})
	}
	for _, tc := range []struct {
		name  string
		size  int64
		frags []fragment
	}{
		{"empty", 1 << 20, nil},
		{"data to the end", 64 << 10, []fragment{{0, 512}, {60 << 10, 4 << 10}}},
		{"100 runs", 100 * 8192, many},
	} {
		t.Run(tc.name, func(t *testing.T) {
			disk := make([]byte, tc.size)
			for i, f := range tc.frags {
				for j := f.Offset; j < f.Offset+f.Length; j++ {
					disk[j] = byte(i + 1)
				}
			}
			var buf bytes.Buffer
			if err := writeSparseTar(&buf, bytes.NewReader(disk), tc.size, tc.frags, time.Unix(1700000000, 0)); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			tarPath := filepath.Join(dir, "x.tar")
			os.WriteFile(tarPath, buf.Bytes(), 0o644)
			x := filepath.Join(dir, "x")
			os.Mkdir(x, 0o755)
			if r := qemutest.Exec(t, "tar", "-C", x, "--sparse", "-xf", tarPath); r.Code != 0 {
				t.Fatalf("tar: %s", r.Stderr)
			}
			got, err := os.ReadFile(filepath.Join(x, "disk.raw"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, disk) {
				t.Fatalf("GNU tar extracts %d bytes that differ from the %d-byte disk", len(got), len(disk))
			}
		})
	}
}

func TestTarHeaderLimits(t *testing.T) {
	if _, err := (tarHeader{Name: string(make([]byte, 101))}).encode(); err == nil {
		t.Error("a 101-byte name was encoded")
	}
	if _, err := (tarHeader{Name: "a", Size: -1}).encode(); err == nil {
		t.Error("a negative size was encoded")
	}
	field := make([]byte, 12)
	if err := number(field, 16<<30); err != nil || field[0] != 0x80 {
		t.Errorf("16 GiB: %v, %x (want base-256)", err, field)
	}
}
