package checksum

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/vdiskio/vdisk/formats"
)

// Log is a hash log in the manner of dc3dd's: what was copied from where to
// where, when, the digests of the guest bytes, the digests of each piece of
// a split output, and the ranges that could not be read. Its text form
// (WriteTo, ParseLog) is one fact a line, "key: value":
//
//	vdisk hash log
//	tool: vdisk 0.1.0
//	command: vdisk convert --hash md5,sha256 /dev/sdb disk.qcow2
//	started: 2026-12-01T09:40:00Z
//	source: /dev/sdb
//	source format: raw
//	target: disk.qcow2
//	target format: qcow2
//	bytes: 1073741824 (2097152 sectors)
//	md5: 0f343b0931126a20f133d67c2b018a3b
//	sha256: 6c1f...
//	piece: disk.raw.001 offset 0 bytes 536870912 md5 1b2c... sha256 77aa...
//	read errors: 1 (512 bytes replaced by zeros)
//	read error: offset 4096 length 512: input/output error
//	completed: 2026-12-01T09:41:00Z
//
// The digests are of the guest bytes (what `vdisk checksum --linear`
// prints); piece digests are of the piece files' bytes.
type Log struct {
	Tool, Command        string
	Started, Completed   time.Time
	Source, SourceFormat string
	Target, TargetFormat string
	Bytes                int64
	Digests              []Digest
	Pieces               []Piece
	ReadErrors           []ReadError
}

// Piece is one file of a split output.
type Piece struct {
	Name          string
	Offset, Bytes int64
	Digests       []Digest
}

// ReadError is a range that could not be read (the output holds zeros).
type ReadError struct {
	Offset, Length int64
	Err            string
}

const (
	logMagic = "vdisk hash log"
	// Parsing limits: a log names at most this many pieces and read errors,
	// on lines of at most maxLogLine bytes.
	maxLogEntries = 1 << 20
	maxLogLine    = 64 << 10
)

// WriteTo writes the log's text form.
func (l *Log) WriteTo(w io.Writer) (int64, error) {
	var b strings.Builder
	line := func(key, val string) {
		if val != "" {
			fmt.Fprintf(&b, "%s: %s\n", key, oneLine(val))
		}
	}
	b.WriteString(logMagic + "\n")
	line("tool", l.Tool)
	line("command", l.Command)
	line("started", timeText(l.Started))
	line("source", l.Source)
	line("source format", l.SourceFormat)
	line("target", l.Target)
	line("target format", l.TargetFormat)
	line("bytes", fmt.Sprintf("%d (%d sectors)", l.Bytes, (l.Bytes+511)/512))
	for _, d := range l.Digests {
		line(d.Algorithm, d.Hex())
	}
	for _, p := range l.Pieces {
		val := fmt.Sprintf("%s offset %d bytes %d", quoteName(p.Name), p.Offset, p.Bytes)
		for _, d := range p.Digests {
			val += " " + d.Algorithm + " " + d.Hex()
		}
		line("piece", val)
	}
	var bad int64
	for _, e := range l.ReadErrors {
		bad += e.Length
	}
	line("read errors", fmt.Sprintf("%d (%d bytes replaced by zeros)", len(l.ReadErrors), bad))
	for _, e := range l.ReadErrors {
		line("read error", fmt.Sprintf("offset %d length %d: %s", e.Offset, e.Length, e.Err))
	}
	line("completed", timeText(l.Completed))
	n, err := io.WriteString(w, b.String())
	return int64(n), err
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// ParseLog reads a log's text form. Unknown keys are refused, so a typo in
// an edited log is not silently ignored; name is used in errors.
func ParseLog(r io.Reader, name string) (*Log, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxLogLine)
	l := &Log{Bytes: -1}
	lineNo := 0
	bad := func(format string, args ...any) error {
		return &formats.Error{File: name, Structure: fmt.Sprintf("line %d", lineNo), Offset: -1,
			Kind: formats.ErrCorrupt, Msg: fmt.Sprintf(format, args...)}
	}
	for sc.Scan() {
		lineNo++
		text := strings.TrimRight(sc.Text(), "\r")
		if lineNo == 1 {
			if text != logMagic {
				return nil, bad("not a vdisk hash log (the first line is not %q)", logMagic)
			}
			continue
		}
		if strings.TrimSpace(text) == "" || strings.HasPrefix(text, "#") {
			continue
		}
		key, val, ok := strings.Cut(text, ": ")
		if !ok {
			return nil, bad("want \"key: value\"")
		}
		if err := l.set(key, val); err != nil {
			return nil, bad("%s: %v", key, err)
		}
		if len(l.Pieces) > maxLogEntries || len(l.ReadErrors) > maxLogEntries {
			return nil, &formats.Error{File: name, Structure: fmt.Sprintf("line %d", lineNo), Offset: -1,
				Kind: formats.ErrLimit, Msg: fmt.Sprintf("more than %d pieces or read errors", maxLogEntries)}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: line %d: %w", name, lineNo+1, err)
	}
	switch {
	case lineNo == 0:
		return nil, bad("empty file, not a vdisk hash log")
	case l.Bytes < 0:
		return nil, bad("no \"bytes\" line")
	case len(l.Digests) == 0:
		return nil, bad("no digest line")
	}
	return l, nil
}

// set applies one key: value line.
func (l *Log) set(key, val string) error {
	var err error
	switch key {
	case "tool":
		l.Tool = val
	case "command":
		l.Command = val
	case "started":
		l.Started, err = time.Parse(time.RFC3339Nano, val)
	case "completed":
		l.Completed, err = time.Parse(time.RFC3339Nano, val)
	case "source":
		l.Source = val
	case "source format":
		l.SourceFormat = val
	case "target":
		l.Target = val
	case "target format":
		l.TargetFormat = val
	case "bytes":
		l.Bytes, err = parseCount(strings.Fields(val))
	case "piece":
		var p Piece
		p, err = parsePiece(val)
		l.Pieces = append(l.Pieces, p)
	case "read errors":
	case "read error":
		var e ReadError
		e, err = parseReadError(val)
		l.ReadErrors = append(l.ReadErrors, e)
	default:
		var d Digest
		if d, err = parseDigest(key, val); err == nil {
			for _, have := range l.Digests {
				if have.Algorithm == d.Algorithm {
					return fmt.Errorf("digest given twice")
				}
			}
			l.Digests = append(l.Digests, d)
		}
	}
	return err
}

func parseCount(fields []string) (int64, error) {
	if len(fields) == 0 {
		return 0, fmt.Errorf("missing number")
	}
	n, err := strconv.ParseInt(fields[0], 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad byte count %q", fields[0])
	}
	return n, nil
}

func parseDigest(algorithm, hexSum string) (Digest, error) {
	h, err := New(algorithm)
	if err != nil {
		return Digest{}, fmt.Errorf("unknown key or algorithm")
	}
	sum, err := hex.DecodeString(strings.TrimSpace(hexSum))
	if err != nil || len(sum) != h.Size() {
		return Digest{}, fmt.Errorf("want %d hexadecimal digits", 2*h.Size())
	}
	return Digest{Algorithm: strings.ToLower(algorithm), Sum: sum}, nil
}

// quoteName quotes a piece name that would not survive splitting at
// spaces (Go syntax).
func quoteName(name string) string {
	if name == "" || strings.ContainsAny(name, " \t\"") || !strconv.IsPrint(rune(name[0])) || strconv.Quote(name) != `"`+name+`"` {
		return strconv.Quote(name)
	}
	return name
}

// parsePiece parses "NAME offset N bytes N [ALG HEX]...", NAME possibly
// quoted.
func parsePiece(val string) (Piece, error) {
	name := ""
	if strings.HasPrefix(val, `"`) {
		q, err := strconv.QuotedPrefix(val)
		if err != nil {
			return Piece{}, fmt.Errorf("bad quoted name")
		}
		name, _ = strconv.Unquote(q)
		val = "x" + val[len(q):]
	}
	f := strings.Fields(val)
	if len(f) < 5 || f[1] != "offset" || f[3] != "bytes" || len(f)%2 != 1 {
		return Piece{}, fmt.Errorf("want \"NAME offset N bytes N [ALG HEX]...\"")
	}
	if name == "" {
		name = f[0]
	}
	p := Piece{Name: name}
	var err error
	if p.Offset, err = parseCount(f[2:3]); err != nil {
		return p, err
	}
	if p.Bytes, err = parseCount(f[4:5]); err != nil {
		return p, err
	}
	for i := 5; i+1 < len(f); i += 2 {
		d, err := parseDigest(f[i], f[i+1])
		if err != nil {
			return p, fmt.Errorf("%s: %v", f[i], err)
		}
		p.Digests = append(p.Digests, d)
	}
	return p, nil
}

// parseReadError parses "offset N length N: message".
func parseReadError(val string) (ReadError, error) {
	// The message may be empty, and the line's trailing space trimmed: cut
	// at the first colon (the numbers before it have none).
	head, msg, _ := strings.Cut(val, ":")
	msg = strings.TrimSpace(msg)
	f := strings.Fields(head)
	if len(f) != 4 || f[0] != "offset" || f[2] != "length" {
		return ReadError{}, fmt.Errorf("want \"offset N length N: message\"")
	}
	off, err := parseCount(f[1:2])
	if err != nil {
		return ReadError{}, err
	}
	n, err := parseCount(f[3:4])
	if err != nil {
		return ReadError{}, err
	}
	return ReadError{Offset: off, Length: n, Err: msg}, nil
}
