package iso

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"time"
	"unicode/utf16"
)

// posWriter tracks the output position.
type posWriter struct {
	bw  *bufio.Writer
	raw io.Writer
	pos int64
}

func (p *posWriter) Write(b []byte) (int, error) {
	n, err := p.bw.Write(b)
	p.pos += int64(n)
	return n, err
}

// padTo writes zeros up to byte offset off (which must not be behind).
func (p *posWriter) padTo(off int64) error {
	if off < p.pos {
		return fmt.Errorf("iso: layout error: at %d, expected %d", p.pos, off)
	}
	var zero [blockBytes]byte
	for p.pos < off {
		if _, err := p.Write(zero[:min(int64(len(zero)), off-p.pos)]); err != nil {
			return err
		}
	}
	return nil
}

// chunk is a piece of file data read ahead of the writer.
type chunk struct {
	file int // index in b.files
	data []byte
	err  error
}

const (
	readAheadBytes  = 4 << 20 // one read
	readAheadChunks = 4       // reads in flight ahead of the writer
)

// readFiles reads the data of every non-empty file in order, ahead of the
// writer, so reading the sources and writing the image overlap.
func (b *builder) readFiles(free chan []byte, out chan<- chunk, done <-chan struct{}) {
	defer close(out)
	send := func(c chunk) bool {
		select {
		case out <- c:
			return true
		case <-done:
			return false
		}
	}
	for i, fn := range b.files {
		if fn.size == 0 {
			continue
		}
		f, err := b.fsys.Open(fn.src)
		if err != nil {
			send(chunk{file: i, err: err})
			return
		}
		left := fn.size
		patch := b.boot != nil && fn == b.boot.bios && b.opts.Boot.InfoTable
		for left > 0 {
			var buf []byte
			select {
			case buf = <-free:
			case <-done:
				f.Close()
				return
			}
			if err := b.ctx.Err(); err != nil {
				f.Close()
				send(chunk{file: i, err: err})
				return
			}
			n, err := io.ReadFull(f, buf[:min(int64(len(buf)), left)])
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				err = fmt.Errorf("%s: file shrank while the image was written (%d of %d bytes)", b.where(fn.src), fn.size-left+int64(n), fn.size)
			}
			if err != nil {
				f.Close()
				send(chunk{file: i, err: err})
				return
			}
			if patch && left == fn.size {
				b.patchInfoTable(buf[:n])
			}
			left -= int64(n)
			if !send(chunk{file: i, data: buf[:n]}) {
				f.Close()
				return
			}
		}
		f.Close()
	}
}

// writeFiles writes the file data produced by readFiles.
func (b *builder) writeFiles(p *posWriter) error {
	free := make(chan []byte, readAheadChunks)
	for range readAheadChunks {
		free <- make([]byte, readAheadBytes)
	}
	out := make(chan chunk, readAheadChunks)
	done := make(chan struct{})
	defer close(done)
	go b.readFiles(free, out, done)
	if err := p.bw.Flush(); err != nil {
		return err
	}
	cur := -1
	for c := range out {
		if c.err != nil {
			return c.err
		}
		if c.file != cur {
			cur = c.file
			if err := p.padTo(int64(b.files[cur].lba[0]) * blockBytes); err != nil {
				return err
			}
			if err := p.bw.Flush(); err != nil {
				return err
			}
		}
		if err := p.writeRaw(c.data); err != nil {
			return err
		}
		free <- c.data[:cap(c.data)]
	}
	return nil
}

// maxWriteBytes caps one write to the image: write(2) calls of megabytes
// into the page cache cost several times the system time of 256 KiB ones
// on Linux 6.x guests (large folios from host-reported free memory; see
// formats' osFile.WriteAt, which caps its writes the same way).
const maxWriteBytes = 256 << 10

// writeRaw writes data at the current position, unbuffered, in calls of
// at most maxWriteBytes.
func (p *posWriter) writeRaw(data []byte) error {
	for len(data) > 0 {
		n, err := p.raw.Write(data[:min(len(data), maxWriteBytes)])
		p.pos += int64(n)
		if err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}

func (b *builder) write(w io.Writer) error {
	p := &posWriter{bw: bufio.NewWriterSize(w, copyBufBytes), raw: w}
	if err := p.padTo(firstVDOffset); err != nil {
		return err
	}
	p.Write(b.volumeDescriptor(0))
	if b.boot != nil {
		p.Write(b.bootRecord())
	}
	if b.trees == 2 {
		p.Write(b.volumeDescriptor(1))
	}
	term := make([]byte, blockBytes)
	term[0] = vdTerminator
	copy(term[1:], standardID)
	term[6] = 1
	p.Write(term)
	for t := 0; t < b.trees; t++ {
		for m := 0; m < 2; m++ {
			if err := p.padTo(int64(b.ptLBA[t][m]) * blockBytes); err != nil {
				return err
			}
			p.Write(b.pathTable(t, m == 1))
		}
	}
	if b.boot != nil {
		if err := p.padTo(int64(b.boot.catalog) * blockBytes); err != nil {
			return err
		}
		p.Write(b.bootCatalog())
	}
	if b.opts.RockRidge {
		if err := b.writeContinuations(p); err != nil {
			return err
		}
	}
	for t := 0; t < b.trees; t++ {
		for _, d := range b.order[t] {
			if err := p.padTo(int64(d.lba[t]) * blockBytes); err != nil {
				return err
			}
			if _, err := p.Write(b.directory(d, t)); err != nil {
				return err
			}
		}
	}
	if err := b.writeFiles(p); err != nil {
		return err
	}
	if err := p.padTo(int64(b.blocks) * blockBytes); err != nil {
		return err
	}
	return p.bw.Flush()
}

// writeContinuations writes the Rock Ridge continuation area, in the
// order rockRidge placed it.
func (b *builder) writeContinuations(p *posWriter) error {
	for _, d := range b.dirs {
		if d.dotCE != nil {
			if err := p.padTo(d.dotCEOff); err != nil {
				return err
			}
			p.Write(d.dotCE)
		}
		for _, k := range d.kids {
			if k.ce != nil {
				if err := p.padTo(k.ceOff); err != nil {
					return err
				}
				p.Write(k.ce)
			}
		}
	}
	return p.padTo(int64(b.ceLBA)*blockBytes + blocksFor(b.ceBytes)*blockBytes)
}

// volumeDescriptor renders the primary (t=0) or Joliet (t=1) descriptor.
func (b *builder) volumeDescriptor(t int) []byte {
	d := make([]byte, blockBytes)
	d[0] = vdPrimary
	text := aField
	if t == 1 {
		d[0] = vdSupplementary
		copy(d[88:], "%/E")
		text = ucs2Field
	}
	copy(d[1:], standardID)
	d[6] = 1
	text(d[8:40], b.opts.SystemID)
	text(d[40:72], b.opts.VolumeID)
	both32(d[80:], b.blocks)
	both16(d[120:], 1)
	both16(d[124:], 1)
	both16(d[128:], blockBytes)
	both32(d[132:], uint32(b.ptBytes[t]))
	binary.LittleEndian.PutUint32(d[140:], b.ptLBA[t][0])
	binary.BigEndian.PutUint32(d[148:], b.ptLBA[t][1])
	copy(d[156:190], dirRecord([]byte{0}, b.root.lba[t], uint32(b.root.dirBytes[t]), b.root.mtime, flagDirectory, nil))
	text(d[190:318], "")
	text(d[318:446], b.opts.PublisherID)
	text(d[446:574], b.opts.PreparerID)
	text(d[574:702], b.opts.ApplicationID)
	text(d[702:739], "")
	text(d[739:776], "")
	text(d[776:813], "")
	copy(d[813:], vdDate(b.now))
	copy(d[830:], vdDate(b.now))
	copy(d[847:], vdDate(time.Time{}))
	copy(d[864:], vdDate(time.Time{}))
	d[881] = 1
	return d
}

// aField writes s space-padded (truncated to the field).
func aField(f []byte, s string) {
	n := copy(f, s)
	for i := n; i < len(f); i++ {
		f[i] = ' '
	}
}

// ucs2Field writes s as UCS-2 big-endian, padded with U+0020.
func ucs2Field(f []byte, s string) {
	units := utf16.Encode([]rune(s))
	i := 0
	for ; i < len(units) && 2*i+1 < len(f); i++ {
		binary.BigEndian.PutUint16(f[2*i:], units[i])
	}
	for j := 2 * i; j+1 < len(f); j += 2 {
		f[j], f[j+1] = 0, ' '
	}
	if len(f)%2 == 1 {
		f[len(f)-1] = 0
	}
}
