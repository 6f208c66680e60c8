package vmdk

import "github.com/vdiskio/vdisk/formats"

// Create makes a new VMDK image.
func Create(req formats.CreateRequest) (formats.Writable, error) {
	return nil, formats.Unsupportedf(req.Name, "VMDK writing")
}
