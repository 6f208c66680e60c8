package scratch

import (
	"bytes"
	"os"
	"testing"
)

// TestCreate: the file reads what was written, leaves no name in its
// directory once closed (none at all while open where it can be unlinked),
// and reports the hole the OS keeps in it.
func TestCreate(t *testing.T) {
	dir := t.TempDir()
	f, err := Create(dir, ".spool-*")
	if err != nil {
		t.Fatal(err)
	}
	want := []byte("scratch data")
	if _, err := f.WriteAt(want, 4<<20); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(want))
	if _, err := f.ReadAt(got, 4<<20); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read back %q, %v", got, err)
	}
	if entries, _ := os.ReadDir(dir); f.path == "" && len(entries) != 0 {
		t.Errorf("an unlinked scratch file is still listed: %v", entries)
	}
	runs, err := f.Runs(0, 4<<20+int64(len(want)))
	if err != nil || len(runs) == 0 || runs[len(runs)-1].Hole {
		t.Fatalf("runs %+v, %v", runs, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the closed scratch file is still listed: %v", entries)
	}
}
