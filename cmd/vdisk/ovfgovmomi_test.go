//go:build linux || darwin || freebsd

package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/vmware/govmomi/ovf"
)

// govmomiSummary reads the OVF descriptor at path with govmomi's ovf
// package (VMware's own Go OVF reader, the one govc import.ova uses: a
// second parser next to the python3-lxml check) and reports what it read
// in the lxml check's terms, checking on the way what govmomi needs to
// import the package: a VirtualSystem with a VirtualHardwareSection, every
// Disk's fileRef in References, every item's Parent an item and every
// ovf:/disk/ host resource a Disk.
func govmomiSummary(t *testing.T, path string) ovfSummary {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env, err := ovf.Unmarshal(f)
	if err != nil {
		t.Fatalf("govmomi ovf.Unmarshal %s: %v", path, err)
	}
	sum, err := summarizeGovmomi(env)
	if err != nil {
		t.Fatalf("govmomi reading %s: %v", path, err)
	}
	return sum
}

func summarizeGovmomi(env *ovf.Envelope) (ovfSummary, error) {
	var sum ovfSummary
	files := map[string]ovf.File{}
	for _, f := range env.References {
		if f.ID == "" || f.Href == "" {
			return sum, fmt.Errorf("a References File without id or href: %+v", f)
		}
		files[f.ID] = f
	}
	if env.Disk == nil || len(env.Disk.Disks) == 0 {
		return sum, fmt.Errorf("no DiskSection disks")
	}
	sum.Disks = map[string]struct {
		Capacity int64  `json:"capacity"`
		Href     string `json:"href"`
		Size     int64  `json:"size"`
		Format   string `json:"format"`
	}{}
	for _, d := range env.Disk.Disks {
		if d.FileRef == nil || d.Format == nil {
			return sum, fmt.Errorf("disk %q has no fileRef or format", d.DiskID)
		}
		file, ok := files[*d.FileRef]
		if !ok {
			return sum, fmt.Errorf("disk %q: fileRef %q is not in References", d.DiskID, *d.FileRef)
		}
		n, err := strconv.ParseInt(d.Capacity, 10, 64)
		if err != nil {
			return sum, fmt.Errorf("disk %q capacity %q: %v", d.DiskID, d.Capacity, err)
		}
		if d.CapacityAllocationUnits != nil && *d.CapacityAllocationUnits != "byte" {
			shift, err := strconv.Atoi(strings.TrimPrefix(*d.CapacityAllocationUnits, "byte * 2^"))
			if err != nil {
				return sum, fmt.Errorf("disk %q capacity units %q", d.DiskID, *d.CapacityAllocationUnits)
			}
			n <<= shift
		}
		e := sum.Disks[d.DiskID]
		e.Capacity, e.Href, e.Size, e.Format = n, file.Href, int64(file.Size), *d.Format
		sum.Disks[d.DiskID] = e
	}
	vs := env.VirtualSystem
	if vs == nil || vs.ID == "" || len(vs.VirtualHardware) != 1 || len(vs.OperatingSystem) != 1 {
		return sum, fmt.Errorf("want a VirtualSystem with an id, one VirtualHardwareSection and one OperatingSystemSection: %+v", vs)
	}
	if vs.Name != nil {
		sum.Name = *vs.Name
	}
	hw := vs.VirtualHardware[0]
	if hw.System == nil || hw.System.VirtualSystemType == nil {
		return sum, fmt.Errorf("no System with a VirtualSystemType")
	}
	sum.Type = *hw.System.VirtualSystemType
	items := map[string]ovf.ResourceAllocationSettingData{}
	for _, it := range hw.Item {
		if it.InstanceID == "" || it.ElementName == "" || it.ResourceType == nil {
			return sum, fmt.Errorf("an Item without InstanceID, ElementName or ResourceType: %+v", it)
		}
		items[it.InstanceID] = it
	}
	for _, it := range hw.Item {
		if err := summarizeItem(&sum, it, items); err != nil {
			return sum, err
		}
	}
	return sum, nil
}

func summarizeItem(sum *ovfSummary, it ovf.ResourceAllocationSettingData, items map[string]ovf.ResourceAllocationSettingData) error {
	str := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	switch rt := *it.ResourceType; rt {
	case 3:
		if it.VirtualQuantity == nil {
			return fmt.Errorf("CPU item %s has no VirtualQuantity", it.InstanceID)
		}
		sum.CPUs = int(*it.VirtualQuantity)
	case 4:
		if it.VirtualQuantity == nil || str(it.AllocationUnits) != "byte * 2^20" {
			return fmt.Errorf("memory item %s: quantity %v in %q", it.InstanceID, it.VirtualQuantity, str(it.AllocationUnits))
		}
		sum.MemoryMiB = int(*it.VirtualQuantity)
	case 5, 6:
		sum.Controller = fmt.Sprintf("%d/%s", rt, str(it.ResourceSubType))
	case 17:
		parent, ok := items[str(it.Parent)]
		if !ok || parent.ResourceType == nil || (*parent.ResourceType != 5 && *parent.ResourceType != 6) {
			return fmt.Errorf("disk item %s: Parent %q is not a controller item", it.InstanceID, str(it.Parent))
		}
		if len(it.HostResource) != 1 || !strings.HasPrefix(it.HostResource[0], "ovf:/disk/") {
			return fmt.Errorf("disk item %s: HostResource %q", it.InstanceID, it.HostResource)
		}
		id := strings.TrimPrefix(it.HostResource[0], "ovf:/disk/")
		if _, ok := sum.Disks[id]; !ok {
			return fmt.Errorf("disk item %s: HostResource names no Disk %q", it.InstanceID, id)
		}
		sum.DiskOn = id
	}
	return nil
}
