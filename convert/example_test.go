package convert_test

import (
	"context"
	"fmt"

	"github.com/vdiskio/vdisk/convert"
	_ "github.com/vdiskio/vdisk/qcow2" // drivers register themselves, like image/png
	_ "github.com/vdiskio/vdisk/raw"
)

// The README's library example: convert an image to a compressed qcow2 with
// a progress callback.
func ExampleRun() {
	toQcow2 := func(ctx context.Context, in, out string) error {
		return convert.Run(ctx, convert.Job{
			Source: in,
			Target: out, Format: "qcow2", CreateOptions: "cluster_size=64k",
			Copy: convert.Options{
				Compress: true,
				Progress: func(done, total int64) { fmt.Printf("\r%3d%%", done*100/total) },
			},
		})
	}
	_ = toQcow2
}
