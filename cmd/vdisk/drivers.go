package main

// The formats this command knows: each driver registers itself.
import (
	_ "github.com/vdiskio/vdisk/ewf"
	_ "github.com/vdiskio/vdisk/iso"
	_ "github.com/vdiskio/vdisk/luks"
	_ "github.com/vdiskio/vdisk/qcow2"
	_ "github.com/vdiskio/vdisk/raw"
	_ "github.com/vdiskio/vdisk/vdi"
	_ "github.com/vdiskio/vdisk/vhd"
	_ "github.com/vdiskio/vdisk/vhdx"
	_ "github.com/vdiskio/vdisk/vmdk"
)
