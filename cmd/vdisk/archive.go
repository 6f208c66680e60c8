package main

import (
	"fmt"
	"io"
	"sync"

	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/cloudpkg"
	"github.com/vdiskio/vdisk/convert"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/imageinfo"
	"github.com/vdiskio/vdisk/source/archive"
)

// archiveFlags choose the disk of a tar source (OVA, Vagrant box, GCE
// tar.gz, any tar): --disk N (the OVF's N-th disk) or --member NAME.
type archiveFlags struct {
	disk   int
	member string
	mu     sync.Mutex
	opened map[string]archiveSeen // the archives opened, by source name
}

type archiveSeen struct {
	a *archive.Archive
	m archive.Member
}

func addArchiveFlags(root *cobra.Command, g *globals) {
	root.PersistentFlags().IntVar(&g.archive.disk, "disk", 0,
		"in an OVA or Vagrant box source, read the OVF's disk N (1 is the first; `vdisk info` lists them)")
	root.PersistentFlags().StringVar(&g.archive.member, "member", "",
		"in a tar source (.tar, .tar.gz, .ova, .box), read the member of this name")
}

func (f *archiveFlags) heard(path string, a *archive.Archive, m archive.Member) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.opened == nil {
		f.opened = map[string]archiveSeen{}
	}
	f.opened[path] = archiveSeen{a: a, m: m}
}

func (f *archiveFlags) seen(path string) (archiveSeen, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.opened[path]
	return s, ok
}

// archived makes opts open tar sources as the member the flags choose
// (after decompression: a .tar.gz is spooled, then read in place).
func (g *globals) archived(opts *formats.OpenOptions) error {
	if g.archive.disk < 0 {
		return fmt.Errorf("%w: --disk %d (disks count from 1)", formats.ErrInvalidOption, g.archive.disk)
	}
	o := &archive.Opener{Open: opts.OpenFile, Disk: g.archive.disk, Member: g.archive.member, OnOpen: g.archive.heard}
	inner := o.OpenPath
	opts.OpenFile = func(path string, writable bool) (formats.File, error) {
		f, err := inner(path, writable)
		if err != nil || (g.archive.disk == 0 && g.archive.member == "") {
			return f, err
		}
		if _, ok := f.(*archive.MemberFile); !ok {
			f.Close()
			return nil, fmt.Errorf("%s: --disk and --member choose a disk inside a tar archive (OVA, Vagrant box, tar.gz); this is not one", path)
		}
		return f, nil
	}
	return nil
}

// archiveInfo is what `info` says of an archive source (nil when the
// source is none).
func (g *globals) archiveInfo(path string) imageinfo.Object {
	s, ok := g.archive.seen(path)
	if !ok {
		return nil
	}
	var disks []any
	for _, d := range s.a.Disks {
		obj := imageinfo.Object{{Key: "number", Value: int64(d.Number)}, {Key: "member", Value: d.Member}}
		if d.ID != "" {
			obj = append(obj, imageinfo.Field{Key: "disk-id", Value: d.ID})
		}
		if d.Format != "" {
			obj = append(obj, imageinfo.Field{Key: "format", Value: d.Format})
		}
		if d.CapacityBytes >= 0 {
			obj = append(obj, imageinfo.Field{Key: "capacity", Value: d.CapacityBytes})
		}
		disks = append(disks, obj)
	}
	obj := imageinfo.Object{{Key: "kind", Value: string(s.a.Kind)}, {Key: "member", Value: s.m.Name}}
	if s.a.Provider != "" {
		obj = append(obj, imageinfo.Field{Key: "provider", Value: s.a.Provider})
	}
	if s.a.Descriptor != "" {
		obj = append(obj, imageinfo.Field{Key: "descriptor", Value: s.a.Descriptor})
	}
	if s.m.Sparse != "" {
		obj = append(obj, imageinfo.Field{Key: "sparse", Value: s.m.Sparse})
	}
	if disks != nil {
		obj = append(obj, imageinfo.Field{Key: "disks", Value: disks})
	}
	return obj
}

// printArchive prints the human form of archiveInfo.
func (g *globals) printArchive(w io.Writer, path string) {
	s, ok := g.archive.seen(path)
	if !ok {
		return
	}
	fmt.Fprintf(w, "archive: %s, member %s", s.a.Kind, s.m.Name)
	if s.a.Provider != "" {
		fmt.Fprintf(w, " (provider %s)", s.a.Provider)
	}
	if s.m.Sparse != "" {
		fmt.Fprintf(w, " (GNU sparse, %s)", s.m.Sparse)
	}
	fmt.Fprintln(w)
	if len(s.a.Disks) == 0 {
		return
	}
	fmt.Fprintln(w, "archive disks:")
	for _, d := range s.a.Disks {
		line := fmt.Sprintf("    %d: %s", d.Number, d.Member)
		if d.ID != "" {
			line += " (OVF disk " + d.ID
			if d.CapacityBytes >= 0 {
				line += fmt.Sprintf(", capacity %d bytes", d.CapacityBytes)
			}
			line += ")"
		}
		if d.Member == s.m.Name {
			line += " <- read"
		}
		fmt.Fprintln(w, line)
	}
}

// packageDrivers are the output formats that are packages, not images
// (-O ova, -O gce): package cloudpkg writes them.
func packageDriver(name string) *formats.Driver {
	switch name {
	case cloudpkg.OVAName:
		return cloudpkg.OVADriver()
	case cloudpkg.GCEName:
		return cloudpkg.GCEDriver()
	}
	return nil
}

// usePackageDriver makes a conversion to -O ova or -O gce write the
// package; an OVA's VMDK grains are compressed by the engine's workers.
func usePackageDriver(job *convert.Job) {
	if drv := packageDriver(job.Format); drv != nil {
		job.Driver = drv
		job.Copy.Compress = job.Copy.Compress || drv.Name == cloudpkg.OVAName
	}
}
