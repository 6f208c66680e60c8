package iso_test

import (
	"fmt"
	"log"
	"time"

	"github.com/vdiskio/vdisk/iso"
)

// A cloud-init NoCloud seed: a directory with user-data and meta-data at
// its root, labelled "cidata", with Joliet and Rock Ridge names and a fixed
// timestamp so that the same seed always gives the same bytes. The CLI
// equivalent is
//
//	vdisk iso create -o seed.iso --label cidata --joliet --rock-ridge --source-date-epoch 0 seed/
func ExampleCreateFile() {
	epoch := time.Unix(0, 0).UTC()
	err := iso.CreateFile("seed.iso", "seed", iso.CreateOptions{
		VolumeID: "cidata", Joliet: true, RockRidge: true, SourceDateEpoch: &epoch,
	})
	if err != nil {
		log.Fatal(err)
	}
}

// Listing an image and taking one file out of it.
func ExampleFS_Extract() {
	fsys, err := iso.OpenPath("debian.iso")
	if err != nil {
		log.Fatal(err)
	}
	defer fsys.Close()
	entries, err := fsys.ReadDir("/")
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range entries {
		fmt.Println(e.Mode, e.Size, e.Path)
	}
	// Writes ./out/grub.cfg; nothing is ever written outside ./out.
	if err := fsys.Extract("/boot/grub/grub.cfg", "out"); err != nil {
		log.Fatal(err)
	}
}
