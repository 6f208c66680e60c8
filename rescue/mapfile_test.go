package rescue

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vdiskio/vdisk/formats"
)

// manualExample is the mapfile of the ddrescue manual's "Mapfile
// structure" section (ddrescue 1.27).
const manualExample = `# Mapfile. Created by GNU ddrescue version 1.27
# Command line: ddrescue /dev/sdb sdb.img sdb.map
# Start time: 2024-02-08 06:56:57
# Current time: 2024-02-08 06:56:59
# Copying non-tried blocks... Pass 1 (forwards)
# current_pos current_status current_pass
0x00970000 ? 1
# pos size status
0x00000000 0x02200000 +
0x02200000 0x00000001 -
0x02200001 0x3F690000 ?
`

func TestParseManualExample(t *testing.T) {
	m, err := ParseMap(strings.NewReader(manualExample), "sdb.map", 0x02200001+0x3F690000)
	if err != nil {
		t.Fatal(err)
	}
	want := []Block{{0, 0x02200000, Finished}, {0x02200000, 1, BadSector}, {0x02200001, 0x3F690000, NonTried}}
	if diff := cmp.Diff(want, m.Blocks); diff != "" || m.Pos != 0x00970000 || m.Phase != NonTried || m.Pass != 1 {
		t.Errorf("blocks (-want +got):\n%s\npos %x phase %c pass %d", diff, m.Pos, m.Phase, m.Pass)
	}
	// Octal, decimal, trailing comments, an old status line without pass,
	// and a domain that covers only part of the source.
	m, err = ParseMap(strings.NewReader("# old\n010 +\n16 8 + # eight\n0x18 010 -\n"), "old.map", 64)
	if err != nil {
		t.Fatal(err)
	}
	want = []Block{{0, 16, NonTried}, {16, 8, Finished}, {24, 8, BadSector}, {32, 32, NonTried}}
	if diff := cmp.Diff(want, m.Blocks); diff != "" || m.Pos != 8 || m.Pass != 1 {
		t.Errorf("blocks (-want +got):\n%s", diff)
	}
}

func TestParseMapRefuses(t *testing.T) {
	for name, text := range map[string]string{
		"empty":       "",
		"no status":   "# only comments\n",
		"bad status":  "0 X 1\n",
		"block char":  "0 + 1\n0 10 F\n",
		"gap":         "0 + 1\n0 10 +\n20 10 +\n",
		"overlap":     "0 + 1\n0 10 +\n5 10 +\n",
		"past size":   "0 + 1\n0 200 +\n",
		"zero size":   "0 + 1\n0 0 +\n",
		"negative":    "0 + 1\n-1 10 +\n",
		"underscore":  "0 + 1\n0 1_0 +\n",
		"fields":      "0 + 1\n0 10\n",
		"pass":        "0 + 0\n",
		"long line":   "0 + 1\n" + strings.Repeat("0", maxMapLine) + " 1 +\n",
		"huge number": "0 + 1\n0 0xFFFFFFFFFFFFFFFFFF +\n",
	} {
		_, err := ParseMap(strings.NewReader(text), "x.map", 100)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		var fe *formats.Error
		if name != "long line" && (!errors.As(err, &fe) || !errors.Is(err, formats.ErrCorrupt) || fe.File != "x.map") {
			t.Errorf("%s: %v does not wrap ErrCorrupt naming the file", name, err)
		}
	}
}

func TestMapSet(t *testing.T) {
	m := NewMap(100)
	m.Set(10, 10, Finished)
	m.Set(20, 5, Finished)
	m.Set(50, 100, BadSector)
	m.Set(0, 3, NonTrimmed)
	want := []Block{{0, 3, NonTrimmed}, {3, 7, NonTried}, {10, 15, Finished}, {25, 25, NonTried}, {50, 50, BadSector}}
	if diff := cmp.Diff(want, m.Blocks); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	m.Set(0, 100, Finished)
	if len(m.Blocks) != 1 || !m.Done() || m.Bytes(Finished) != 100 {
		t.Errorf("all finished: %+v", m.Blocks)
	}
}

func TestMapRoundTrip(t *testing.T) {
	m := NewMap(1 << 30)
	m.Set(4096, 512, BadSector)
	m.Set(1<<20, 1<<20, Finished)
	m.Set(5<<20, 3, NonScraped)
	m.Pos, m.Phase, m.Pass, m.Command = 77, NonTrimmed, 3, "vdisk rescue a b"
	var b bytes.Buffer
	m.WriteTo(&b)
	got, err := ParseMap(&b, "m", 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m.Blocks, got.Blocks); diff != "" || got.Pos != 77 || got.Phase != NonTrimmed || got.Pass != 3 {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func FuzzParseMap(f *testing.F) {
	f.Add(manualExample, int64(0x02200001+0x3F690000))
	f.Add("0 + 1\n0 10 +\n10 10 -\n", int64(20))
	f.Add("# x\n0x10 ?\n", int64(0))
	f.Fuzz(func(t *testing.T, text string, size int64) {
		if size < 0 {
			return
		}
		m, err := ParseMap(strings.NewReader(text), "fuzz", size)
		if err != nil {
			return
		}
		pos := int64(0)
		for _, b := range m.Blocks {
			if b.Pos != pos || b.Size <= 0 || !b.Status.block() {
				t.Fatalf("blocks %+v do not tile [0, %d)", m.Blocks, size)
			}
			pos = b.End()
		}
		if pos != size {
			t.Fatalf("blocks end at %d, size %d", pos, size)
		}
		var out bytes.Buffer
		m.WriteTo(&out)
		if _, err := ParseMap(&out, "again", size); err != nil {
			t.Fatalf("written map does not parse: %v\n%s", err, out.String())
		}
	})
}
