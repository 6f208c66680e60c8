package fileid

import (
	"os"
	"path/filepath"
	"testing"
)

type memFile string

func (m memFile) Name() string { return string(m) }

// TestSame: an OS file opened by two names (a hard link) is one file, two
// distinct files are not; non-OS files compare by cleaned absolute name.
func TestSame(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, p := range []string{a, b} {
		if err := os.WriteFile(p, []byte(p), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(dir, "link")
	if err := os.Link(a, link); err != nil {
		t.Skip("no hard links here:", err)
	}
	fa, err := os.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	if !Of(fa).Same(OfPath(link)) {
		t.Errorf("%s and its hard link %s are not the same file", a, link)
	}
	if Of(fa).Same(OfPath(b)) {
		t.Errorf("%s and %s are the same file", a, b)
	}
	if !Of(memFile("x/../y")).Same(Of(memFile("y"))) || Of(memFile("y")).Same(Of(memFile("z"))) {
		t.Error("named files do not compare by cleaned name")
	}
	if Of(memFile(a)).Same(Of(fa)) {
		t.Error("a named file equals an OS file")
	}
}
