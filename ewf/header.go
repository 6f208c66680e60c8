package ewf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/klauspost/compress/zlib"
)

// Case metadata is kept as text in the first segment file, zlib-compressed:
//
//   - header: ASCII lines, "1" (categories), "main", a tab-separated line of
//     identifiers and a line of values (CRLF line ends in EnCase, LF in
//     FTK, linen and SMART; linen adds "srce" and "sub" categories);
//   - header2 (EnCase 4 and later): the same as UTF-16 with a byte order
//     mark, LF line ends, dates as POSIX seconds;
//   - xheader (EWF-X): XML elements named after the values.
//
// Identifiers: c case number, n evidence number, a description, e examiner,
// t notes, md model, sn serial number, av software version, ov platform,
// m acquisition date, u system date, p password hash, r compression level.

// Metadata is the case information of an EWF image.
type Metadata struct {
	CaseNumber      string
	EvidenceNumber  string
	Description     string
	Examiner        string
	Notes           string
	Model           string
	SerialNumber    string
	SoftwareVersion string
	Platform        string
	AcquisitionDate string // as stored: "2026 12 1 8 53 48" (EnCase) or POSIX seconds
	SystemDate      string
}

// maxHeaderBytes bounds a decompressed header section (EnCase limits each
// value to 3000 characters; a whole header is a few KiB).
const maxHeaderBytes = 4 << 20

// maxValueChars is EnCase's limit for a free-form header value.
const maxValueChars = 3000 - 1

// inflate decompresses a header-like section body, at most limit bytes.
func inflate(body []byte, limit int64) ([]byte, error) {
	zr, err := zlib.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	out, err := io.ReadAll(io.LimitReader(zr, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(out)) > limit {
		return nil, fmt.Errorf("decompresses to more than %d bytes", limit)
	}
	return out, nil
}

// decodeUTF16 decodes header2 text (byte order mark first).
func decodeUTF16(b []byte) string {
	order := binary.ByteOrder(binary.LittleEndian)
	if len(b) >= 2 && b[0] == 0xfe && b[1] == 0xff {
		order, b = binary.BigEndian, b[2:]
	} else if len(b) >= 2 && b[0] == 0xff && b[1] == 0xfe {
		b = b[2:]
	}
	units := make([]uint16, len(b)/2)
	for i := range units {
		units[i] = order.Uint16(b[2*i:])
	}
	return string(utf16.Decode(units))
}

// parseHeaderText reads the main category of a header or header2 text.
func parseHeaderText(text string) Metadata {
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	var md Metadata
	for i := 0; i+2 < len(lines); i++ {
		if lines[i] != "main" {
			continue
		}
		ids := strings.Split(lines[i+1], "\t")
		vals := strings.Split(lines[i+2], "\t")
		for j, id := range ids {
			if j < len(vals) {
				md.set(id, vals[j])
			}
		}
		break
	}
	return md
}

func (md *Metadata) set(id, v string) {
	switch id {
	case "c":
		md.CaseNumber = v
	case "n":
		md.EvidenceNumber = v
	case "a":
		md.Description = v
	case "e":
		md.Examiner = v
	case "t":
		md.Notes = v
	case "md":
		md.Model = v
	case "sn":
		md.SerialNumber = v
	case "av":
		md.SoftwareVersion = v
	case "ov":
		md.Platform = v
	case "m":
		md.AcquisitionDate = v
	case "u":
		md.SystemDate = v
	}
}

var xmlElement = regexp.MustCompile(`<([a-zA-Z0-9_]+)>([^<]*)</([a-zA-Z0-9_]+)>`)

// parseXML reads the flat <name>value</name> elements of xheader and xhash.
func parseXML(text string) map[string]string {
	out := map[string]string{}
	for _, m := range xmlElement.FindAllStringSubmatch(text, -1) {
		if m[1] == m[3] {
			out[strings.ToLower(m[1])] = xmlUnescape(m[2])
		}
	}
	return out
}

func xmlUnescape(s string) string {
	return strings.NewReplacer("&lt;", "<", "&gt;", ">", "&quot;", `"`, "&apos;", "'", "&amp;", "&").Replace(s)
}

func parseXHeader(text string) Metadata {
	x := parseXML(text)
	return Metadata{CaseNumber: x["case_number"], EvidenceNumber: x["evidence_number"],
		Description: x["description"], Examiner: x["examiner_name"], Notes: x["notes"],
		Model: x["model"], SerialNumber: x["serial_number"],
		SoftwareVersion: x["acquiry_software_version"], Platform: x["acquiry_operating_system"],
		AcquisitionDate: x["acquiry_date"], SystemDate: x["system_date"]}
}

// merge fills md's empty fields from o.
func (md *Metadata) merge(o Metadata) {
	fill := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	fill(&md.CaseNumber, o.CaseNumber)
	fill(&md.EvidenceNumber, o.EvidenceNumber)
	fill(&md.Description, o.Description)
	fill(&md.Examiner, o.Examiner)
	fill(&md.Notes, o.Notes)
	fill(&md.Model, o.Model)
	fill(&md.SerialNumber, o.SerialNumber)
	fill(&md.SoftwareVersion, o.SoftwareVersion)
	fill(&md.Platform, o.Platform)
	fill(&md.AcquisitionDate, o.AcquisitionDate)
	fill(&md.SystemDate, o.SystemDate)
}

// humanDate renders a stored date: POSIX seconds as UTC, EnCase's
// "Y M D h m s" (the acquiring machine's local time) as "Y-MM-DD hh:mm:ss".
func humanDate(v string) string {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
		return time.Unix(n, 0).UTC().Format("2006-01-02 15:04:05 UTC")
	}
	f := strings.Fields(v)
	if len(f) == 6 {
		var n [6]int
		for i, s := range f {
			x, err := strconv.Atoi(s)
			if err != nil {
				return v
			}
			n[i] = x
		}
		return fmt.Sprintf("%04d-%02d-%02d %02d:%02d:%02d", n[0], n[1], n[2], n[3], n[4], n[5])
	}
	return v
}

// checkValue refuses header values EWF cannot hold: tabs and line ends
// separate the values, and EnCase stops at 2999 characters.
func checkValue(key, v string) error {
	if strings.ContainsAny(v, "\t\r\n") {
		return fmt.Errorf("%s may not contain tabs or line breaks (they separate EWF header values)", key)
	}
	if len([]rune(v)) > maxValueChars {
		return fmt.Errorf("%s is longer than EnCase's %d characters", key, maxValueChars)
	}
	return nil
}

// headerText is the header section text vdisk writes (EnCase 4 to 7 form:
// CRLF, dates as "Y M D h m s" in local time).
func headerText(md Metadata, when time.Time) string {
	date := fmt.Sprintf("%d %d %d %d %d %d", when.Year(), int(when.Month()), when.Day(), when.Hour(), when.Minute(), when.Second())
	vals := []string{md.CaseNumber, md.EvidenceNumber, md.Description, md.Examiner, md.Notes,
		md.SoftwareVersion, md.Platform, date, date, "0"}
	return "1\r\nmain\r\nc\tn\ta\te\tt\tav\tov\tm\tu\tp\r\n" + strings.Join(vals, "\t") + "\r\n\r\n"
}

// header2Text is the header2 text vdisk writes (EnCase 6 form, as
// ewfacquire writes it: main, srce and sub categories).
func header2Text(md Metadata, when time.Time) string {
	secs := strconv.FormatInt(when.Unix(), 10)
	vals := []string{md.Description, md.CaseNumber, md.EvidenceNumber, md.Examiner, md.Notes,
		md.Model, md.SerialNumber, md.SoftwareVersion, md.Platform, secs, secs, "0", ""}
	return "3\nmain\na\tc\tn\te\tt\tmd\tsn\tav\tov\tm\tu\tp\tdc\n" + strings.Join(vals, "\t") + "\n\n" +
		"srce\n0\t1\np\tn\tid\tev\ttb\tlo\tpo\tah\tgu\taq\n0\t0\n\t\t\t\t\t-1\t-1\t\t\t\n\n" +
		"sub\n0\t1\np\tn\tid\tnu\tco\tgu\n0\t0\n\t\t\t\t1\t\n\n"
}

// encodeUTF16 encodes s as UTF-16LE with a byte order mark.
func encodeUTF16(s string) []byte {
	units := utf16.Encode([]rune(s))
	b := make([]byte, 2+2*len(units))
	b[0], b[1] = 0xff, 0xfe
	for i, u := range units {
		binary.LittleEndian.PutUint16(b[2+2*i:], u)
	}
	return b
}

// deflate zlib-compresses a header section body.
func deflate(p []byte) []byte {
	var buf bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&buf, zlib.DefaultCompression)
	zw.Write(p)
	zw.Close()
	return buf.Bytes()
}
