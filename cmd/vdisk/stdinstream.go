package main

import (
	"os"

	"github.com/vdiskio/vdisk/convert"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/source/compressed"
	"github.com/vdiskio/vdisk/source/stream"
)

// peekStdin buffers the first bytes of standard input, for convert's
// choice between streaming it and spooling it; the spooler then reads
// the same buffered reader.
func (g *globals) peekStdin() []byte {
	br, head := stream.Peek(os.Stdin)
	g.spool.stdin = br
	return head
}

// streamStdin makes job read "-" as a stream, without a spool, when the
// image on it can be (package source/stream: raw, fixed VHD,
// streamOptimized VMDK) and the conversion is a plain one; else the
// spooler takes it. A raw stream's size is known only at its end, so it
// streams only into outputs that can be shrunk to it then (raw, qcow2,
// fixed VHD files): others spool it, as they need the size to be created.
func (g *globals) streamStdin(job *convert.Job, head []byte, srcFormat string, plain bool) error {
	if !plain || compressed.Detect(head) != compressed.None {
		return nil
	}
	kind := stream.Probe(head, srcFormat)
	switch {
	case kind == stream.Spool:
		return nil
	case kind == stream.Raw && (job.Driver != nil || !convert.CanFinishSize(job.Format, job.CreateOptions, job.Target == "-")):
		return nil
	}
	limit := compressed.DefaultLimitBytes
	if g.spool.limit != "" {
		n, err := formats.ParseSize(g.spool.limit)
		if err != nil || n <= 0 {
			return nil // g.spooled reports it
		}
		limit = n
	}
	img, err := stream.Open(g.spool.stdin, kind, stream.Options{Name: "-", Format: srcFormat, LimitBytes: limit})
	if err != nil {
		return err
	}
	job.SourceImage = img
	if !img.SizeKnown() {
		job.Copy.Progress = nil // a raw stream's total is unknown until its end
	}
	return nil
}
