package vmdk

import "github.com/vdiskio/vdisk/formats"

// Subformats that Create writes.
const (
	subMonolithicSparse = "monolithicSparse"
	subMonolithicFlat   = "monolithicFlat"
	subTwoGbSparse      = "twoGbMaxExtentSparse"
	subTwoGbFlat        = "twoGbMaxExtentFlat"
	subStreamOptimized  = "streamOptimized"
)

// createOptions are qemu's vmdk create options, names, defaults and help.
var createOptions = []formats.OptionSpec{
	{Name: "adapter_type", Type: formats.OptString, Default: "ide",
		Values: []string{"ide", "lsilogic", "buslogic", "legacyESX"},
		Help:   "Virtual adapter type, can be one of ide (default), lsilogic, buslogic or legacyESX"},
	{Name: "backing_file", Type: formats.OptString, Help: "File name of a base image"},
	{Name: "backing_fmt", Type: formats.OptString, Values: []string{"vmdk"}, Help: "Must be 'vmdk' if present"},
	{Name: "compat6", Type: formats.OptBool, Default: "off", Help: "VMDK version 6 image"},
	{Name: "hwversion", Type: formats.OptString, Default: "undefined", Help: "VMDK hardware version"},
	{Name: "subformat", Type: formats.OptString, Default: subMonolithicSparse,
		Values: []string{subMonolithicSparse, subMonolithicFlat, subTwoGbSparse, subTwoGbFlat, subStreamOptimized},
		Help:   "VMDK flat extent format, can be one of {monolithicSparse (default) | monolithicFlat | twoGbMaxExtentSparse | twoGbMaxExtentFlat | streamOptimized} "},
	{Name: "toolsversion", Type: formats.OptString, Help: "VMware guest tools version"},
	{Name: "zeroed_grain", Type: formats.OptBool, Default: "off", Help: "Enable efficient zero writes using the zeroed-grain GTE feature"},
}
