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

// CreateOptions are qemu's vmdk create options, typed: the zero value is
// qemu-img's defaults (monolithicSparse, ide, hardware version 4, no
// backing file). They are the one source of the -o names, defaults and
// help (createOptions); library callers pass them through
// formats.OptionsOf(driver.CreateOptions, vmdk.CreateOptions{...}).
type CreateOptions struct {
	AdapterType string `opt:"adapter_type" default:"ide" values:"ide,lsilogic,buslogic,legacyESX" help:"Virtual adapter type, can be one of ide (default), lsilogic, buslogic or legacyESX"`
	BackingFile string `opt:"backing_file" help:"File name of a base image"`
	BackingFmt  string `opt:"backing_fmt" values:"vmdk" help:"Must be 'vmdk' if present"`
	Compat6     bool   `opt:"compat6" default:"off" help:"VMDK version 6 image"`
	// CompressionLevel is vdisk's own (qemu has none): the zlib effort of
	// streamOptimized grains, 1 fastest to 9 smallest; 0 means 6, which
	// matches the size of qemu's grains (zlib's default level).
	CompressionLevel int    `opt:"compression_level" min:"1" max:"9" help:"Compression level of streamOptimized grains, 1 (fastest) to 9 (smallest); default 6 (vdisk only)"`
	HWVersion        string `opt:"hwversion" default:"undefined" help:"VMDK hardware version"`
	Subformat        string `opt:"subformat" default:"monolithicSparse" values:"monolithicSparse,monolithicFlat,twoGbMaxExtentSparse,twoGbMaxExtentFlat,streamOptimized" help:"VMDK flat extent format, can be one of {monolithicSparse (default) | monolithicFlat | twoGbMaxExtentSparse | twoGbMaxExtentFlat | streamOptimized} "`
	ToolsVersion     string `opt:"toolsversion" help:"VMware guest tools version"`
	ZeroedGrain      bool   `opt:"zeroed_grain" default:"off" help:"Enable efficient zero writes using the zeroed-grain GTE feature"`
}

// createOptions are the -o table.
var createOptions = formats.OptionSpecsOf(CreateOptions{})
