package vmdk

import (
	"encoding/base64"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

// TestStreamSizeMatchesQemu: at the default level, vdisk's streamOptimized
// output is at most 1% larger than qemu-img's on text-like (base64) and
// mixed data, and qemu-img reads it (check, compare); compression_level 1
// and 9 are valid too, 9 no larger than 1.
func TestStreamSizeMatchesQemu(t *testing.T) {
	qemutest.Tool(t, "qemu-img")
	dir := t.TempDir()
	r := rand.New(rand.NewSource(3))
	rnd := make([]byte, 3<<20)
	r.Read(rnd)
	b64 := []byte(base64.StdEncoding.EncodeToString(rnd))[:4<<20]
	// mixed: 4 KiB pieces of random bytes, text of random words and zeros.
	words := []string{"disk ", "image ", "grain ", "sector ", "the ", "of ", "vmdk\n"}
	var mixed []byte
	for len(mixed) < 4<<20 {
		piece := make([]byte, 0, 4096)
		switch r.Intn(3) {
		case 0:
			piece = piece[:4096]
			r.Read(piece)
		case 1:
			for len(piece) < 4096 {
				piece = append(piece, words[r.Intn(len(words))]...)
			}
		default:
			piece = piece[:4096]
		}
		mixed = append(mixed, piece[:4096]...)
	}
	for name, data := range map[string][]byte{"base64": b64, "mixed": mixed} {
		rawPath := filepath.Join(dir, name+".raw")
		if err := os.WriteFile(rawPath, data, 0o644); err != nil {
			t.Fatal(err)
		}
		theirs := filepath.Join(dir, name+".qemu.vmdk")
		qemutest.Img(t, "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", rawPath, theirs)
		ref, _ := os.Stat(theirs)
		sizes := map[string]int64{}
		for _, opts := range []string{"", "compression_level=1", "compression_level=9"} {
			mem := fileio.NewMem("out.vmdk", nil)
			w := createWith(t, mem, int64(len(data)), strings.TrimSuffix("subformat=streamOptimized,"+opts, ","), 1)
			writeStreamCompressed(t, w, data)
			finish(t, w)
			ours := filepath.Join(dir, fmt.Sprintf("%s%d.vmdk", name, len(sizes)))
			if err := os.WriteFile(ours, mem.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			qemutest.RequireClean(t, "vmdk", ours)
			qemutest.RequireSame(t, "vmdk", ours, "raw", rawPath)
			sizes[opts] = int64(len(mem.Bytes()))
		}
		ratio := float64(sizes[""]) / float64(ref.Size())
		t.Logf("%s: vdisk %d bytes (level 1: %d, 9: %d), qemu-img %d (%.4f)", name, sizes[""], sizes["compression_level=1"], sizes["compression_level=9"], ref.Size(), ratio)
		if ratio > 1.01 {
			t.Errorf("%s: vdisk's streamOptimized output is %.2f%% larger than qemu-img's", name, 100*(ratio-1))
		}
		if sizes["compression_level=9"] > sizes["compression_level=1"] {
			t.Errorf("%s: level 9 (%d bytes) larger than level 1 (%d)", name, sizes["compression_level=9"], sizes["compression_level=1"])
		}
	}
	for _, bad := range []string{"compression_level=0", "compression_level=10"} {
		o, err := formats.ParseOptions(createOptions, "subformat=streamOptimized,"+bad)
		if err == nil {
			_, err = newConfig(t.Context(), formats.CreateRequest{Name: "x.vmdk", Size: 1 << 20, Options: o}, rand.New(rand.NewSource(1)))
		}
		if err == nil || !strings.Contains(err.Error(), "compression_level") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}
