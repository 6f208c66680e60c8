package cloudpkg

import (
	"encoding/xml"
	"fmt"
	"strings"
)

// The namespaces of an OVF 1.x descriptor (DSP0243 1.1, schema DSP8023)
// and of the CIM classes its hardware items use.
const (
	nsOVF  = "http://schemas.dmtf.org/ovf/envelope/1"
	nsRASD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
	nsVSSD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
	nsXSI  = "http://www.w3.org/2001/XMLSchema-instance"
	nsCIM  = "http://schemas.dmtf.org/wbem/wscim/1/common"
	nsVMW  = "http://www.vmware.com/schema/ovf"
)

// streamOptimizedURI is the ovf:format of a streamOptimized VMDK, as
// vSphere and VirtualBox know it.
const streamOptimizedURI = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"

// CIM resource types (CIM_ResourceAllocationSettingData.ResourceType).
const (
	rtProcessor = 3
	rtMemory    = 4
	rtIDE       = 5
	rtSCSI      = 6
	rtDisk      = 17
)

// controller is the hardware item of a disk controller option.
type controller struct {
	resourceType int
	subType      string // rasd:ResourceSubType: what vSphere and VirtualBox read
	description  string
}

func controllerOf(adapter string) controller {
	switch adapter {
	case "ide":
		return controller{rtIDE, "PIIX4", "IDE Controller"}
	case "buslogic":
		return controller{rtSCSI, "buslogic", "SCSI Controller"}
	case "lsisas1068":
		return controller{rtSCSI, "lsilogicsas", "SCSI Controller"}
	case "pvscsi":
		return controller{rtSCSI, "VirtualSCSI", "SCSI Controller"}
	}
	return controller{rtSCSI, "lsilogic", "SCSI Controller"}
}

// capacity writes a disk size as ovf:capacity and its units, in the
// largest power-of-two unit that divides it (as VMware's exports do).
func capacity(sizeBytes int64) (string, string) {
	for _, shift := range []int{30, 20, 10} {
		if sizeBytes > 0 && sizeBytes%(1<<shift) == 0 {
			return fmt.Sprint(sizeBytes >> shift), fmt.Sprintf("byte * 2^%d", shift)
		}
	}
	return fmt.Sprint(sizeBytes), "byte"
}

// Descriptor is the OVF 1.x descriptor of a minimal VM with one disk:
// References (the VMDK and its size), DiskSection, and a VirtualSystem
// with its OperatingSystemSection and VirtualHardwareSection (CPUs,
// memory, the controller, the disk on it). Items list their rasd elements
// in the schema's (alphabetical) order.
func Descriptor(c ovaConfig, vmdkBytes int64) string {
	esc := func(s string) string {
		var b strings.Builder
		xml.EscapeText(&b, []byte(s))
		return b.String()
	}
	name := esc(c.name)
	capN, capUnits := capacity(c.sizeBytes)
	ctl := controllerOf(c.adapter)
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p(`<?xml version="1.0" encoding="UTF-8"?>`)
	p(`<Envelope xmlns="%s" xmlns:cim="%s" xmlns:ovf="%s" xmlns:rasd="%s" xmlns:vmw="%s" xmlns:vssd="%s" xmlns:xsi="%s">`,
		nsOVF, nsCIM, nsOVF, nsRASD, nsVMW, nsVSSD, nsXSI)
	p(`  <References>`)
	p(`    <File ovf:href="%s" ovf:id="file1" ovf:size="%d"/>`, esc(c.diskMember), vmdkBytes)
	p(`  </References>`)
	p(`  <DiskSection>`)
	p(`    <Info>Virtual disk information</Info>`)
	p(`    <Disk ovf:capacity="%s" ovf:capacityAllocationUnits="%s" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="%s"/>`, capN, capUnits, streamOptimizedURI)
	p(`  </DiskSection>`)
	p(`  <VirtualSystem ovf:id="%s">`, name)
	p(`    <Info>A virtual machine</Info>`)
	p(`    <Name>%s</Name>`, name)
	p(`    <OperatingSystemSection ovf:id="1">`)
	p(`      <Info>The kind of installed guest operating system</Info>`)
	p(`      <Description>Other</Description>`)
	p(`    </OperatingSystemSection>`)
	p(`    <VirtualHardwareSection>`)
	p(`      <Info>Virtual hardware requirements</Info>`)
	p(`      <System>`)
	p(`        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>`)
	p(`        <vssd:InstanceID>0</vssd:InstanceID>`)
	p(`        <vssd:VirtualSystemIdentifier>%s</vssd:VirtualSystemIdentifier>`, name)
	p(`        <vssd:VirtualSystemType>vmx-%02d</vssd:VirtualSystemType>`, c.hwVersion)
	p(`      </System>`)
	item := func(fields ...string) {
		p(`      <Item>`)
		for i := 0; i+1 < len(fields); i += 2 {
			p(`        <rasd:%s>%s</rasd:%s>`, fields[i], fields[i+1], fields[i])
		}
		p(`      </Item>`)
	}
	item("AllocationUnits", "hertz * 10^6", "Description", "Number of Virtual CPUs",
		"ElementName", fmt.Sprintf("%d virtual CPU(s)", c.cpus), "InstanceID", "1",
		"ResourceType", fmt.Sprint(rtProcessor), "VirtualQuantity", fmt.Sprint(c.cpus))
	item("AllocationUnits", "byte * 2^20", "Description", "Memory Size",
		"ElementName", fmt.Sprintf("%dMB of memory", c.memoryMiB), "InstanceID", "2",
		"ResourceType", fmt.Sprint(rtMemory), "VirtualQuantity", fmt.Sprint(c.memoryMiB))
	ctlFields := []string{"Address", "0", "Description", ctl.description,
		"ElementName", ctl.description + " 0", "InstanceID", "3", "ResourceSubType", ctl.subType,
		"ResourceType", fmt.Sprint(ctl.resourceType)}
	item(ctlFields...)
	item("AddressOnParent", "0", "ElementName", "Hard Disk 1", "HostResource", "ovf:/disk/vmdisk1",
		"InstanceID", "4", "Parent", "3", "ResourceType", fmt.Sprint(rtDisk))
	p(`    </VirtualHardwareSection>`)
	p(`  </VirtualSystem>`)
	p(`</Envelope>`)
	return b.String()
}
