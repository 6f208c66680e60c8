package main

// The formats this command knows: each driver registers itself.
import (
	_ "github.com/vdiskio/vdisk/raw"
)
