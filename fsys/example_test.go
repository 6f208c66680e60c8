package fsys_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log"
	"os"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/fsys"
	_ "github.com/vdiskio/vdisk/qcow2" // drivers register themselves, like image/png
	_ "github.com/vdiskio/vdisk/raw"
)

// What a disk holds, as `vdisk info` shows it: the example disk is one
// ext4 file system spanning the disk (no partition table).
func ExampleDescribeContents() {
	img, err := formats.Open(context.Background(), "../testdata/example.qcow2", formats.OpenOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer img.Close()
	c := fsys.DescribeContents(img)
	p := c.Partitions[0]
	fmt.Printf("table %s; %s %q over %d bytes from %d\n", c.Table, p.FileSystem, p.Label, p.Size, p.Start)
	// Output: table none; ext4 "example" over 33554432 bytes from 0
}

// WriteHuman prints Contents as text: here a disk with an MBR whose one
// Linux partition, at 1 MiB, holds the example's ext4 file system (the
// disk is built in memory and opened through OpenReaderAt).
func ExampleContents_WriteHuman() {
	ctx := context.Background()
	src, err := formats.Open(ctx, "../testdata/example.qcow2", formats.OpenOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer src.Close()
	const start = 1 << 20
	disk := make([]byte, start+src.Size())
	if _, err := src.ReadAt(disk[start:], 0); err != nil {
		log.Fatal(err)
	}
	entry := disk[446:462] // the MBR's first partition entry
	entry[4] = 0x83        // Linux
	binary.LittleEndian.PutUint32(entry[8:], start/512)
	binary.LittleEndian.PutUint32(entry[12:], uint32(src.Size()/512))
	disk[510], disk[511] = 0x55, 0xAA
	img, err := formats.OpenReaderAt(ctx, bytes.NewReader(disk), int64(len(disk)), "disk.raw", formats.OpenOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer img.Close()
	fsys.DescribeContents(img).WriteHuman(os.Stdout)
	// Output:
	// Partition table: mbr (512-byte sectors)
	//     #            start           size  type                     name             file system
	//     1          1048576       33554432  Linux                                     ext4 (label "example")
}
