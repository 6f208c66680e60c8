package rescue

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/vdiskio/vdisk/formats"
)

// Status is a block's state (and, on the status line, the phase running).
type Status byte

// Block and phase statuses, as ddrescue writes them.
const (
	NonTried   Status = '?'
	NonTrimmed Status = '*'
	NonScraped Status = '/'
	BadSector  Status = '-'
	Finished   Status = '+'
	// Filling and Generating appear only on ddrescue's status line.
	Filling    Status = 'F'
	Generating Status = 'G'
)

func (s Status) block() bool {
	switch s {
	case NonTried, NonTrimmed, NonScraped, BadSector, Finished:
		return true
	}
	return false
}

// Block is a run of bytes [Pos, Pos+Size) in one status.
type Block struct {
	Pos, Size int64
	Status    Status
}

// End is Pos+Size.
func (b Block) End() int64 { return b.Pos + b.Size }

// Map is the state of a rescue: blocks covering [0, Size) in order, and
// where the rescue is (the status line).
type Map struct {
	Size    int64
	Blocks  []Block
	Pos     int64  // current position
	Phase   Status // current status (phase)
	Pass    int    // current pass in the phase
	Command string // for the heading comment
	Started time.Time
}

// NewMap returns the map of a rescue not started: all non-tried.
func NewMap(size int64) *Map {
	m := &Map{Size: size, Phase: NonTried, Pass: 1}
	if size > 0 {
		m.Blocks = []Block{{Pos: 0, Size: size, Status: NonTried}}
	}
	return m
}

// Set gives [pos, pos+size) the status s, splitting and merging blocks.
func (m *Map) Set(pos, size int64, s Status) {
	end := min(pos+size, m.Size)
	pos = max(pos, 0)
	if pos >= end {
		return
	}
	out := make([]Block, 0, len(m.Blocks)+2)
	inserted := false
	insert := func() {
		if !inserted {
			out = appendBlock(out, Block{pos, end - pos, s})
			inserted = true
		}
	}
	for _, b := range m.Blocks {
		if b.End() <= pos || b.Pos >= end {
			if b.Pos >= end {
				insert()
			}
			out = appendBlock(out, b)
			continue
		}
		if b.Pos < pos {
			out = appendBlock(out, Block{b.Pos, pos - b.Pos, b.Status})
		}
		insert()
		if b.End() > end {
			out = appendBlock(out, Block{end, b.End() - end, b.Status})
		}
	}
	insert()
	m.Blocks = out
}

func appendBlock(out []Block, b Block) []Block {
	if b.Size <= 0 {
		return out
	}
	if n := len(out); n > 0 && out[n-1].Status == b.Status && out[n-1].End() == b.Pos {
		out[n-1].Size += b.Size
		return out
	}
	return append(out, b)
}

// With returns copies of the blocks in status s, in order.
func (m *Map) With(s Status) []Block {
	var out []Block
	for _, b := range m.Blocks {
		if b.Status == s {
			out = append(out, b)
		}
	}
	return out
}

// Bytes is the number of bytes in status s.
func (m *Map) Bytes(s Status) int64 {
	var n int64
	for _, b := range m.Blocks {
		if b.Status == s {
			n += b.Size
		}
	}
	return n
}

// Bad returns the ranges not rescued after the rescue ran: bad sectors and
// anything not tried, trimmed or scraped (an interrupted rescue).
func (m *Map) Bad() []Block {
	var out []Block
	for _, b := range m.Blocks {
		if b.Status != Finished {
			out = append(out, b)
		}
	}
	return out
}

// Done reports whether every byte is rescued.
func (m *Map) Done() bool { return m.Bytes(Finished) == m.Size }

var phaseNames = map[Status]string{
	NonTried: "Copying non-tried blocks", NonTrimmed: "Trimming failed blocks", NonScraped: "Scraping failed blocks",
	BadSector: "Retrying bad sectors", Finished: "Finished", Filling: "Filling specified blocks", Generating: "Generating approximate mapfile",
}

// WriteTo writes the mapfile in ddrescue's layout.
func (m *Map) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	now := time.Now()
	started := m.Started
	if started.IsZero() {
		started = now
	}
	b.WriteString("# Mapfile. Created by vdisk rescue (GNU ddrescue mapfile format)\n")
	if m.Command != "" {
		fmt.Fprintf(&b, "# Command line: %s\n", strings.Join(strings.Fields(m.Command), " "))
	}
	fmt.Fprintf(&b, "# Start time:   %s\n", started.Format("2006-01-02 15:04:05"))
	fmt.Fprintf(&b, "# Current time: %s\n", now.Format("2006-01-02 15:04:05"))
	phase := m.Phase
	if !phase.block() && phase != Filling && phase != Generating {
		phase = NonTried
	}
	fmt.Fprintf(&b, "# %s\n", phaseNames[phase])
	b.WriteString("# current_pos  current_status  current_pass\n")
	fmt.Fprintf(&b, "0x%08X     %c               %d\n", m.Pos, phase, max(m.Pass, 1))
	b.WriteString("#      pos        size  status\n")
	for _, bl := range m.Blocks {
		fmt.Fprintf(&b, "0x%08X  0x%08X  %c\n", bl.Pos, bl.Size, bl.Status)
	}
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

// Parsing limits: a mapfile of a disk with millions of bad areas is
// possible, one of more blocks than this is not believed.
const (
	maxMapBlocks = 1 << 24
	maxMapLine   = 4096
)

// ParseMap reads a ddrescue mapfile for a source of size bytes. Blocks must
// be contiguous and in order; ranges of [0, size) before the first and after
// the last block are non-tried (ddrescue's domain may be a part of the
// disk); a block past size is an error. name is used in errors.
func ParseMap(r io.Reader, name string, size int64) (*Map, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxMapLine)
	m := &Map{Size: size}
	var blocks []Block
	lineNo := 0
	sawStatus := false
	bad := func(format string, args ...any) error {
		return &formats.Error{File: name, Structure: fmt.Sprintf("mapfile line %d", lineNo), Offset: -1,
			Kind: formats.ErrCorrupt, Msg: fmt.Sprintf(format, args...)}
	}
	for sc.Scan() {
		lineNo++
		fields := strings.Fields(stripComment(sc.Text()))
		if len(fields) == 0 {
			continue
		}
		if !sawStatus {
			if len(fields) < 2 || len(fields) > 3 {
				return nil, bad("the status line wants \"pos status [pass]\"")
			}
			pos, err := parseNumber(fields[0])
			st, ok := statusChar(fields[1])
			if err != nil || !ok || (!st.block() && st != Filling && st != Generating) {
				return nil, bad("bad status line %q", strings.Join(fields, " "))
			}
			m.Pos, m.Phase, m.Pass = pos, st, 1
			if len(fields) == 3 {
				pass, err := parseNumber(fields[2])
				if err != nil || pass < 1 || pass > 1<<20 {
					return nil, bad("bad pass %q", fields[2])
				}
				m.Pass = int(pass)
			}
			sawStatus = true
			continue
		}
		if len(fields) != 3 {
			return nil, bad("a block line wants \"pos size status\"")
		}
		pos, err1 := parseNumber(fields[0])
		sz, err2 := parseNumber(fields[1])
		st, ok := statusChar(fields[2])
		if err1 != nil || err2 != nil || !ok || !st.block() {
			return nil, bad("bad block line %q", strings.Join(fields, " "))
		}
		if sz <= 0 || pos > size || sz > size-pos {
			return nil, bad("block 0x%X+0x%X lies outside the %d-byte source", pos, sz, size)
		}
		if n := len(blocks); n > 0 && blocks[n-1].End() != pos {
			return nil, bad("block at 0x%X does not follow the previous one (ending at 0x%X): blocks must be contiguous and in order", pos, blocks[n-1].End())
		}
		if len(blocks) >= maxMapBlocks {
			return nil, &formats.Error{File: name, Structure: fmt.Sprintf("mapfile line %d", lineNo), Offset: -1,
				Kind: formats.ErrLimit, Msg: fmt.Sprintf("more than %d blocks", maxMapBlocks)}
		}
		blocks = append(blocks, Block{pos, sz, st})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: mapfile line %d: %w", name, lineNo+1, err)
	}
	if !sawStatus {
		return nil, bad("no status line: not a ddrescue mapfile")
	}
	first, last := int64(0), int64(0)
	if len(blocks) > 0 {
		first, last = blocks[0].Pos, blocks[len(blocks)-1].End()
	}
	m.Blocks = appendBlock(nil, Block{0, first, NonTried})
	for _, b := range blocks {
		m.Blocks = appendBlock(m.Blocks, b)
	}
	m.Blocks = appendBlock(m.Blocks, Block{last, size - last, NonTried})
	return m, nil
}

// stripComment drops a '#' comment (at the start or after whitespace).
func stripComment(line string) string {
	for i := 0; i < len(line); i++ {
		if line[i] == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t') {
			return line[:i]
		}
	}
	return line
}

func statusChar(s string) (Status, bool) {
	if len(s) != 1 {
		return 0, false
	}
	return Status(s[0]), true
}

// parseNumber reads a non-negative integer in C syntax: 0x hexadecimal, a
// leading 0 octal, else decimal.
func parseNumber(s string) (int64, error) {
	if strings.ContainsAny(s, "_+-") || strings.HasPrefix(s, "0o") || strings.HasPrefix(s, "0b") {
		return 0, fmt.Errorf("bad number %q", s)
	}
	n, err := strconv.ParseInt(s, 0, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad number %q", s)
	}
	return n, nil
}
