package luks

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

func applyWrites(area []byte, ws []Write) {
	for _, w := range ws {
		copy(area[w.Off:], w.Data)
	}
}

// TestAmendSlots1JudgedByCryptsetup adds a key slot and erases one on a
// header vdisk made; cryptsetup (luksDump, open --test-passphrase)
// judges which passphrases open the volume after each step.
func TestAmendSlots1JudgedByCryptsetup(t *testing.T) {
	qemutest.Tool(t, "cryptsetup")
	area, vol, _, err := Create1("a.luks", CreateParams{Passphrase: testPass, SlotIterations: 1000, DigestIterations: 1000})
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string][]byte{"new": []byte("second passphrase")}
	lookup := func(id string) ([]byte, error) { return secrets[id], nil }
	newID, d := "new", 10*time.Millisecond
	ws, err := vol.AmendSlots1(strings.NewReader(string(area)), SlotChange{Activate: true, NewSecret: &newID, IterTime: &d, OpenKey: testPass, Lookup: lookup}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 2 || ws[1].Off != 0 {
		t.Fatalf("writes: key material first, then the header: %d writes", len(ws))
	}
	applyWrites(area, ws)
	path := filepath.Join(t.TempDir(), "a.luks")
	if err := os.WriteFile(path, append(area, make([]byte, 1<<20)...), 0o644); err != nil {
		t.Fatal(err)
	}
	r := qemutest.Exec(t, "cryptsetup", "luksDump", path)
	if !strings.Contains(r.Stdout, "Key Slot 1: ENABLED") || strings.Count(r.Stdout, ": ENABLED") != 2 {
		t.Fatalf("luksDump after adding slot 1:\n%s%s", r.Stdout, r.Stderr)
	}
	for _, pass := range [][]byte{testPass, secrets["new"]} {
		if r := cryptsetup(t, pass, "open", "--test-passphrase", path); r.Code != 0 {
			t.Fatalf("cryptsetup refuses a passphrase after the add: %s", r.Stderr)
		}
	}

	// Erase slot 0 (the one testPass opens), by that passphrase.
	v2, err := Parse(strings.NewReader(string(area)), int64(len(area)), "a.luks")
	if err != nil {
		t.Fatal(err)
	}
	secrets["old"] = testPass
	oldID := "old"
	ws, err = v2.AmendSlots1(strings.NewReader(string(area)), SlotChange{OldSecret: &oldID, Lookup: lookup}, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	applyWrites(area, ws)
	if err := os.WriteFile(path, append(area, make([]byte, 1<<20)...), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := cryptsetup(t, testPass, "open", "--test-passphrase", path); r.Code == 0 {
		t.Fatal("the erased slot's passphrase still opens the volume")
	}
	if r := cryptsetup(t, secrets["new"], "open", "--test-passphrase", path); r.Code != 0 {
		t.Fatalf("the remaining slot no longer opens: %s", r.Stderr)
	}
}

// TestAmendSlots1Hostile: an inactive slot's fields were not checked when
// the header was parsed; using it is refused (corrupt, naming the slot)
// when its stripes or key material offset do not fit the header area.
func TestAmendSlots1Hostile(t *testing.T) {
	newID := "new"
	lookup := func(string) ([]byte, error) { return []byte("x"), nil }
	for name, mutate := range map[string]func(h *header1){
		"stripes 0":         func(h *header1) { h.Slots[1].Stripes = 0 },
		"huge stripes":      func(h *header1) { h.Slots[1].Stripes = 1 << 31 },
		"offset past":       func(h *header1) { h.Slots[1].KeyOffset = 1 << 30 },
		"offset in header":  func(h *header1) { h.Slots[1].KeyOffset = 0 },
		"material past end": func(h *header1) { h.Slots[1].KeyOffset = h.PayloadOffset - 1 },
	} {
		v, r := hostileHeader(t, mutate)
		one := 1
		_, err := v.AmendSlots1(r, SlotChange{Activate: true, Keyslot: &one, NewSecret: &newID, OpenKey: testPass, Lookup: lookup}, Limits{})
		if !errors.Is(err, formats.ErrCorrupt) || !strings.Contains(err.Error(), "key slot 1") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
