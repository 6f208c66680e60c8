package compare_test

import (
	"context"
	"fmt"
	"log"

	"github.com/vdiskio/vdisk/compare"
	"github.com/vdiskio/vdisk/formats"
)

// Comparing a converted image with its source, as `qemu-img compare` does.
func ExampleImages() {
	ctx := context.Background()
	a, err := formats.Open(ctx, "../testdata/example.qcow2", formats.OpenOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	b, err := formats.Open(ctx, "../testdata/example.qcow2", formats.OpenOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	res, err := compare.Images(ctx, a, b, compare.Options{Strict: true})
	if err != nil {
		log.Fatal(err)
	}
	if !res.Identical {
		fmt.Println("first difference at offset", res.Offset)
		return
	}
	fmt.Println("identical")
	// Output: identical
}
