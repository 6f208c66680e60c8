package cloudpkg

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/vdiskio/vdisk/formats"
)

// OVAName is the output format name of an OVA (`-O ova`).
const OVAName = "ova"

// OVAOptions are the `-o` options of an OVA, typed.
type OVAOptions struct {
	AdapterType string `opt:"adapter_type" default:"lsilogic" values:"ide,lsilogic,buslogic,lsisas1068,pvscsi" help:"the disk's controller: ide, lsilogic (default), buslogic, lsisas1068 (LSI SAS) or pvscsi (VMware paravirtual)"`
	CPUs        int64  `opt:"cpus" default:"1" help:"virtual CPUs of the VM"`
	HWVersion   int64  `opt:"hwversion" default:"10" help:"VMware virtual hardware version (VirtualSystemType vmx-N)"`
	Memory      int64  `opt:"memory,size" default:"1G" help:"memory of the VM (a whole number of MiB)"`
	VMName      string `opt:"name" help:"the VM's name (default: the output file's name without .ova)"`
}

var ovaOptions = formats.OptionSpecsOf(OVAOptions{})

// OVADriver is the (unregistered) driver of `-O ova`: Create returns a
// streamOptimized VMDK writer whose Close packages the OVA.
func OVADriver() *formats.Driver {
	return &formats.Driver{Name: OVAName, Create: createOVA, CreateOptions: ovaOptions}
}

// ovaConfig is an OVA's options, checked.
type ovaConfig struct {
	name       string // the VM and the members' base name
	cpus       int64
	memoryMiB  int64
	adapter    string // the OVA controller option
	hwVersion  int64
	sizeBytes  int64
	diskMember string
}

func newOVAConfig(req formats.CreateRequest) (ovaConfig, error) {
	o := req.Options
	c := ovaConfig{name: o.String("name"), cpus: o.Int("cpus"), adapter: o.String("adapter_type"),
		hwVersion: o.Int("hwversion"), sizeBytes: req.Size}
	mem := o.Size("memory")
	if !o.IsSet("memory") {
		mem = 1 << 30
	}
	if !o.IsSet("cpus") {
		c.cpus = 1
	}
	if !o.IsSet("hwversion") {
		c.hwVersion = 10
	}
	if c.adapter == "" {
		c.adapter = "lsilogic"
	}
	if c.name == "" && req.Name == "-" {
		return c, fmt.Errorf("%w: an OVA written to stdout needs its VM's name: -o name=VM", formats.ErrInvalidOption)
	}
	if c.name == "" {
		c.name = strings.TrimSuffix(filepath.Base(req.Name), filepath.Ext(req.Name))
	}
	switch {
	case c.cpus < 1 || c.cpus > 768:
		return c, fmt.Errorf("%w: cpus=%d (1 to 768)", formats.ErrInvalidOption, c.cpus)
	case mem < 4<<20 || mem%(1<<20) != 0 || mem > 24<<40:
		return c, fmt.Errorf("%w: memory=%d bytes: a whole number of MiB from 4M to 24T", formats.ErrInvalidOption, mem)
	case c.hwVersion < 4 || c.hwVersion > 99:
		return c, fmt.Errorf("%w: hwversion=%d (4 to 99)", formats.ErrInvalidOption, c.hwVersion)
	case !safeName(c.name):
		return c, fmt.Errorf("%w: name=%q: letters, digits and ._- only, at most 80 of them (it names the OVA's members)", formats.ErrInvalidOption, c.name)
	case req.Size%formats.SectorBytes != 0:
		return c, fmt.Errorf("%w: an OVA disk is a whole number of 512-byte sectors (size %d)", formats.ErrInvalidOption, req.Size)
	}
	c.memoryMiB = mem >> 20
	c.diskMember = c.name + "-disk1.vmdk"
	return c, nil
}

// safeName: the member names stay plain file names, inside tar's 100
// bytes, and need no XML escaping.
func safeName(s string) bool {
	if s == "" || len(s) > 80 || s[0] == '.' || s[0] == '-' {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// vmdkAdapter is the VMDK descriptor's ddb.adapterType for a controller:
// VMware writes lsilogic for its SAS and paravirtual controllers too.
func vmdkAdapter(controller string) string {
	switch controller {
	case "ide", "buslogic":
		return controller
	}
	return "lsilogic"
}

// createOVA starts an OVA: the disk is written as a streamOptimized VMDK
// into a temporary file beside the output; Close writes the package.
func createOVA(ctx context.Context, req formats.CreateRequest) (formats.Writable, error) {
	cfg, err := newOVAConfig(req)
	if err != nil {
		return nil, err
	}
	disk, err := createDisk(ctx, req, member{format: "vmdk", name: cfg.diskMember, temp: ".vdisk-ova-*", what: "VMDK's",
		options: fmt.Sprintf("subformat=streamOptimized,adapter_type=%s,hwversion=%d", vmdkAdapter(cfg.adapter), cfg.hwVersion)})
	if err != nil {
		return nil, err
	}
	cw, ok := disk.Writable.(formats.CompressedWriter)
	if !ok {
		disk.abandon()
		return nil, fmt.Errorf("%w: the VMDK writer takes no compressed grains", formats.ErrUnsupported)
	}
	return &ovaWriter{diskImage: disk, cw: cw, cfg: cfg}, nil
}

// ovaWriter is the streamOptimized VMDK being written; Close packages it.
type ovaWriter struct {
	*diskImage
	cw  formats.CompressedWriter
	cfg ovaConfig
}

// Format names the output format.
func (w *ovaWriter) Format() string { return OVAName }

// Sequential: the VMDK inside is written in increasing order.
func (w *ovaWriter) Sequential() bool { return true }

// ClusterSize is the VMDK's grain.
func (w *ovaWriter) ClusterSize() int64 { return w.cw.ClusterSize() }

// Compress compresses a grain for the VMDK (the engine calls it from its
// workers: the OVA's disk is compressed in parallel).
func (w *ovaWriter) Compress(dst, cluster []byte) ([]byte, bool, error) {
	return w.cw.Compress(dst, cluster)
}

// WriteCompressed places a compressed grain.
func (w *ovaWriter) WriteCompressed(off int64, compressed []byte) error {
	return w.cw.WriteCompressed(off, compressed)
}

// Close finishes the VMDK and writes the OVA: descriptor, manifest, disk.
func (w *ovaWriter) Close() error { return w.finish(w.pack) }

// pack writes the tar: NAME.ovf, NAME.mf, NAME-disk1.vmdk (the order of
// DSP0243: the descriptor first, the manifest right after it, then the
// files in the order of References), as POSIX ustar.
func (w *ovaWriter) pack() error {
	vmdkBytes, err := w.tmp.Size()
	if err != nil {
		return err
	}
	now := time.Now()
	ovf := []byte(Descriptor(w.cfg, vmdkBytes))
	diskSum, err := w.hashTemp(vmdkBytes)
	if err != nil {
		return err
	}
	ovfSum := sha256.Sum256(ovf)
	ovfName, mfName := w.cfg.name+".ovf", w.cfg.name+".mf"
	mf := []byte(fmt.Sprintf("SHA256(%s)= %s\nSHA256(%s)= %s\n", ovfName, hex.EncodeToString(ovfSum[:]), w.cfg.diskMember, diskSum))
	out := &offsetWriter{f: w.out}
	for _, m := range []struct {
		name string
		data []byte
	}{{ovfName, ovf}, {mfName, mf}} {
		if err := writeMember(out, tarHeader{Name: m.name, Size: int64(len(m.data)), ModTime: now}, m.data); err != nil {
			return fmt.Errorf("%s: writing %s: %w", w.name, m.name, err)
		}
	}
	hdr, err := tarHeader{Name: w.cfg.diskMember, Size: vmdkBytes, ModTime: now}.encode()
	if err != nil {
		return err
	}
	if _, err := out.Write(hdr); err != nil {
		return err
	}
	if _, err := io.Copy(out, io.NewSectionReader(w.tmp, 0, vmdkBytes)); err != nil {
		return fmt.Errorf("%s: copying the VMDK into the OVA: %w", w.name, err)
	}
	if err := padding(out, vmdkBytes); err != nil {
		return err
	}
	return endOfArchive(out)
}

// hashTemp is the hex SHA256 of the finished VMDK.
func (w *ovaWriter) hashTemp(n int64) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(w.tmp, 0, n)); err != nil {
		return "", fmt.Errorf("%s: hashing the VMDK: %w", w.name, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func writeMember(w io.Writer, h tarHeader, data []byte) error {
	hdr, err := h.encode()
	if err != nil {
		return err
	}
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		return err
	}
	return padding(w, int64(len(data)))
}

// offsetWriter writes a formats.File from its start, in order.
type offsetWriter struct {
	f   formats.File
	off int64
}

func (o *offsetWriter) Write(p []byte) (int, error) {
	n, err := o.f.WriteAt(p, o.off)
	o.off += int64(n)
	return n, err
}
