package imageinfo

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// WriteHuman prints info as `qemu-img info` does. The format-specific
// details are printed from the same ordered values as WriteJSON's: keys
// with '-' as spaces, nested values indented by four spaces, list items as
// [N]:. What the disk holds (Contents) is not printed: the caller prints it
// after (fsys.Contents.WriteHuman).
func (info *ImageInfo) WriteHuman(w io.Writer) {
	fmt.Fprintf(w, "image: %s\n", info.Filename)
	fmt.Fprintf(w, "file format: %s\n", info.Format)
	fmt.Fprintf(w, "virtual size: %s (%d bytes)\n", HumanSize(info.VirtualSize), info.VirtualSize)
	if info.ActualSize != nil {
		fmt.Fprintf(w, "disk size: %s\n", HumanSize(*info.ActualSize))
	} else {
		fmt.Fprintln(w, "disk size: unavailable")
	}
	if info.Encrypted {
		fmt.Fprintln(w, "encrypted: yes")
	}
	if info.ClusterSize != 0 {
		fmt.Fprintf(w, "cluster_size: %d\n", info.ClusterSize)
	}
	if info.BackingFilename != "" {
		if info.FullBackingFilename != info.BackingFilename {
			fmt.Fprintf(w, "backing file: %s (actual path: %s)\n", info.BackingFilename, info.FullBackingFilename)
		} else {
			fmt.Fprintf(w, "backing file: %s\n", info.BackingFilename)
		}
		if info.BackingFilenameFormat != "" {
			fmt.Fprintf(w, "backing file format: %s\n", info.BackingFilenameFormat)
		}
	}
	if len(info.Snapshots) > 0 {
		WriteSnapshots(w, info.Snapshots)
	}
	if info.FormatSpecific != nil {
		fmt.Fprintln(w, "Format specific information:")
		writeHumanValue(w, Ordered(info.FormatSpecific.Data), 1)
	}
}

// WriteSnapshots prints qemu-img's snapshot table ("Snapshot list:").
func WriteSnapshots(w io.Writer, snaps []SnapshotInfo) {
	fmt.Fprintln(w, "Snapshot list:")
	fmt.Fprintf(w, "%-10s%-17s%8s%20s%13s%11s\n", "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK", "ICOUNT")
	for _, s := range snaps {
		date := time.Unix(s.DateSec, 0).Format("2006-01-02 15:04:05")
		clock := fmt.Sprintf("%02d:%02d:%02d.%03d", s.VMClockSec/3600, s.VMClockSec/60%60, s.VMClockSec%60, s.VMClockNsec/1e6)
		fmt.Fprintf(w, "%-9v %-16v %8s %19s %12s %10d\n", s.ID, s.Name,
			HumanSize(int64(s.VMStateSize)), date, clock, s.ICount)
	}
}

// writeHumanValue prints ordered values as qemu's human printer does.
func writeHumanValue(w io.Writer, v any, depth int) {
	pad := strings.Repeat("    ", depth)
	switch x := v.(type) {
	case Object:
		for _, f := range x {
			key := strings.ReplaceAll(f.Key, "-", " ")
			if isComposite(f.Value) {
				fmt.Fprintf(w, "%s%s:\n", pad, key)
				writeHumanValue(w, f.Value, depth+1)
			} else {
				fmt.Fprintf(w, "%s%s: %v\n", pad, key, f.Value)
			}
		}
	case []any:
		for i, item := range x {
			if isComposite(item) {
				fmt.Fprintf(w, "%s[%d]:\n", pad, i)
				writeHumanValue(w, item, depth+1)
			} else {
				fmt.Fprintf(w, "%s[%d]: %v\n", pad, i, item)
			}
		}
	default:
		fmt.Fprintf(w, "%s%v\n", pad, x)
	}
}

func isComposite(v any) bool {
	switch v.(type) {
	case Object, []any:
		return true
	}
	return false
}
