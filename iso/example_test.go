package iso_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"log"
	"testing/fstest"
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
	err := iso.CreateFile(context.Background(), "seed.iso", "seed", iso.CreateOptions{
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
	entries, err := fsys.Entries("/")
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range entries {
		fmt.Println(e.Mode, e.Size, e.Path)
	}
	// Writes ./out/grub.cfg; nothing is ever written outside ./out.
	if err := fsys.Extract(context.Background(), "/boot/grub/grub.cfg", "out"); err != nil {
		log.Fatal(err)
	}
}

// An image built from an io/fs.FS held in memory (any fs.FS works:
// os.DirFS, embed.FS, another image's FS), then read back through io/fs.
func ExampleCreate() {
	seed := fstest.MapFS{
		"user-data": {Data: []byte("#cloud-config\nhostname: demo\n")},
		"meta-data": {Data: []byte("instance-id: demo\n")},
	}
	var buf bytes.Buffer
	err := iso.Create(context.Background(), &buf, seed, iso.CreateOptions{VolumeID: "cidata", RockRidge: true})
	if err != nil {
		log.Fatal(err)
	}
	fsys, err := iso.Open(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "seed.iso")
	if err != nil {
		log.Fatal(err)
	}
	data, err := fs.ReadFile(fsys, "user-data")
	if err != nil {
		log.Fatal(err)
	}
	names, _ := fs.Glob(fsys, "*-data")
	fmt.Printf("%v %q\n", names, data)
	// Output: [meta-data user-data] "#cloud-config\nhostname: demo\n"
}
