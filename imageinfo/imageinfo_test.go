package imageinfo_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/imageinfo"
	"github.com/vdiskio/vdisk/internal/qemutest"
	_ "github.com/vdiskio/vdisk/qcow2"
	_ "github.com/vdiskio/vdisk/raw"
)

// TestImageMatchesQemu: the assembled info, printed by WriteJSON, is
// byte-identical to `qemu-img info --output=json` (and with
// --backing-chain) for images qemu-img made.
func TestImageMatchesQemu(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.qcow2")
	top := filepath.Join(dir, "top.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", "-o", "cluster_size=65536", base, "64M")
	qemutest.IO(t, "qcow2", base, "write -P 0x5a 1M 64k")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", top)
	for _, chain := range []bool{false, true} {
		img, err := formats.Open(context.Background(), top, formats.OpenOptions{NoBacking: !chain})
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		infos := imageinfo.Chain(top, img, chain)
		var v any = infos[0]
		args := []string{"info", "--output=json"}
		if chain {
			v, args = infos, append(args, "--backing-chain")
		}
		if err := imageinfo.WriteJSON(&got, v); err != nil {
			t.Fatal(err)
		}
		img.Close()
		want := qemutest.Img(t, append(args, top)...)
		if got.String() != want {
			t.Errorf("chain=%v:\n--- vdisk\n%s--- qemu-img\n%s", chain, got.String(), want)
		}
	}
}
