package guid

import (
	"os/exec"
	"strings"
	"testing"
)

// TestMixedOrder: the EFI system partition type GUID, as GPT stores it
// (UEFI spec, table "GPT partition type GUIDs" and its byte layout).
func TestMixedOrder(t *testing.T) {
	onDisk := []byte{0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b}
	g := FromMixed(onDisk)
	if got, want := g.Upper(), "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"; got != want {
		t.Errorf("FromMixed = %s, want %s", got, want)
	}
	if m := g.Mixed(); string(m[:]) != string(onDisk) {
		t.Errorf("Mixed = %x, want %x", m, onDisk)
	}
	p, err := Parse("{c12a7328-f81f-11d2-ba4b-00a0c93ec93b}")
	if err != nil || p != g {
		t.Errorf("Parse = %s, %v; want %s", p, err, g)
	}
}

// TestNewIsVersion4: uuid(1) from util-linux reads the variant and version of
// a new GUID (an independent parser); each New differs.
func TestNewIsVersion4(t *testing.T) {
	a, err := New()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := New()
	if a == b || a.IsZero() {
		t.Errorf("New gave %s and %s", a, b)
	}
	if a.String()[14] != '4' || !strings.ContainsRune("89ab", rune(a.String()[19])) {
		t.Errorf("%s is not version 4, variant 10", a)
	}
	uuidparse, err := exec.LookPath("uuidparse")
	if err != nil {
		t.Skip("uuidparse (util-linux) not installed")
	}
	out, err := exec.Command(uuidparse, "-n", "-o", "VARIANT,TYPE", a.String()).Output()
	if err != nil {
		t.Fatal(err)
	}
	if f := strings.Fields(string(out)); len(f) != 2 || f[0] != "DCE" || f[1] != "random" {
		t.Errorf("uuidparse %s: %q, want DCE random", a, out)
	}
}

func TestParseRefuses(t *testing.T) {
	for _, s := range []string{"", "c12a7328f81f11d2ba4b00a0c93ec93b", "c12a7328-f81f-11d2-ba4b-00a0c93ec93", "g12a7328-f81f-11d2-ba4b-00a0c93ec93b", "c12a7328-f81f-11d2-ba4b+00a0c93ec93b"} {
		if g, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) = %s, want an error", s, g)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("c12a7328-f81f-11d2-ba4b-00a0c93ec93b")
	f.Add("{C12A7328-F81F-11D2-BA4B-00A0C93EC93B}")
	f.Fuzz(func(t *testing.T, s string) {
		g, err := Parse(s)
		if err != nil {
			return
		}
		if back, err := Parse(g.String()); err != nil || back != g {
			t.Errorf("%q -> %s -> %s, %v", s, g, back, err)
		}
	})
}
