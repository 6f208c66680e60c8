package iso

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vdiskio/vdisk/formats"
)

func createISO(t testing.TB, tree string, opts CreateOptions) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.iso")
	if err := CreateFile(out, tree, opts); err != nil {
		t.Fatal(err)
	}
	return out
}

func epoch(sec int64) *time.Time {
	t := time.Unix(sec, 0).UTC()
	return &t
}

func TestCreateInterop(t *testing.T) {
	tree := makeTree(t)
	for _, c := range []struct {
		name string
		opts CreateOptions
	}{
		{"plain", CreateOptions{VolumeID: "PLAIN"}},
		{"joliet", CreateOptions{VolumeID: "JOL", Joliet: true}},
		{"rockridge", CreateOptions{VolumeID: "RR", RockRidge: true}},
		{"joliet-rockridge", CreateOptions{VolumeID: "cidata", Joliet: true, RockRidge: true, SourceDateEpoch: epoch(1700000000)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			iso := createISO(t, tree, c.opts)
			xo := xorrisoList(t, iso)
			// Symlinks are stored as empty files outside Rock Ridge, so every
			// reader lists the same names.
			seven := sevenZipList(t, iso)
			var sevenPaths []string
			for p := range seven {
				sevenPaths = append(sevenPaths, p)
			}
			if diff := cmp.Diff(xo, sortedCopy(sevenPaths)); diff != "" {
				t.Errorf("xorriso vs 7z listing (-xorriso +7z):\n%s", diff)
			}
			fsys := openFS(t, iso)
			if diff := cmp.Diff(xo, ourList(t, fsys, false)); diff != "" {
				t.Errorf("xorriso vs vdisk listing (-xorriso +vdisk):\n%s", diff)
			}
			if c.opts.Joliet || c.opts.RockRidge {
				want := []string{}
				for p := range treeDigest(t, tree) {
					want = append(want, "/"+p)
				}
				if diff := cmp.Diff(sortedCopy(want), xo); diff != "" {
					t.Errorf("source tree vs xorriso listing (-source +xorriso):\n%s", diff)
				}
			}
			theirs := filepath.Join(t.TempDir(), "theirs")
			run(t, "xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/", theirs)
			got := treeDigest(t, theirs)
			if c.opts.RockRidge {
				if diff := cmp.Diff(treeDigest(t, tree), got); diff != "" {
					t.Errorf("xorriso extraction vs source (-source +xorriso):\n%s", diff)
				}
			}
			ours := filepath.Join(t.TempDir(), "ours")
			if err := fsys.Extract("/", ours); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(got, treeDigest(t, ours)); diff != "" {
				t.Errorf("xorriso vs vdisk extraction (-xorriso +vdisk):\n%s", diff)
			}
			// xorriso's own consistency check of the image.
			out := run(t, "xorriso", "-indev", iso, "-check_media", "--")
			if strings.Contains(out, "FAILURE") {
				t.Errorf("xorriso -check_media: %s", out)
			}
			img, err := formats.Open(iso, formats.OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			d := specific(t, img)
			if d["volume-id"] != c.opts.VolumeID || d["joliet"] != c.opts.Joliet || d["rock-ridge"] != c.opts.RockRidge {
				t.Errorf("info %v", d)
			}
		})
	}
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func TestCreateReproducible(t *testing.T) {
	tree := makeTree(t)
	opts := CreateOptions{VolumeID: "cidata", Joliet: true, RockRidge: true, SourceDateEpoch: epoch(1234567890)}
	a, _ := os.ReadFile(createISO(t, tree, opts))
	// Touch every file: with a fixed epoch the mtimes do not matter.
	filepath.Walk(tree, func(p string, info os.FileInfo, _ error) error {
		if info.Mode()&os.ModeSymlink == 0 {
			os.Chtimes(p, time.Now(), time.Now())
		}
		return nil
	})
	b, _ := os.ReadFile(createISO(t, tree, opts))
	if !bytes.Equal(a, b) {
		t.Fatal("two runs with the same SOURCE_DATE_EPOCH differ")
	}
	opts.SourceDateEpoch = epoch(1234567891)
	c, _ := os.ReadFile(createISO(t, tree, opts))
	if bytes.Equal(a, c) {
		t.Fatal("a different epoch gives the same bytes")
	}
}

// TestCreateNoCloud is the documented example: a cloud-init NoCloud seed.
func TestCreateNoCloud(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "user-data"), []byte("#cloud-config\npassword: x\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "meta-data"), []byte("instance-id: iid-local01\n"), 0o644)
	iso := createISO(t, dir, CreateOptions{VolumeID: "cidata", Joliet: true, RockRidge: true})
	out := run(t, "xorriso", "-indev", iso, "-pvd_info")
	if !strings.Contains(out, "Volume Id    : cidata") {
		t.Errorf("pvd_info: %s", out)
	}
	fsys := openFS(t, iso)
	r, _, err := fsys.OpenFile("/user-data")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	buf.ReadFrom(r)
	if !strings.HasPrefix(buf.String(), "#cloud-config") {
		t.Fatalf("%q", buf.String())
	}
}

func TestIdentifiers(t *testing.T) {
	cases := []struct {
		name string
		dir  bool
		want string
	}{
		{"readme.txt", false, "README.TXT;1"},
		{"meta-data", false, "META_DATA.;1"},
		{"a.b.c", false, "A_B.C;1"},
		{".hidden", false, "_HIDDEN.;1"},
		{"some directory.d", true, "SOME_DIRECTORY_D"},
		{strings.Repeat("x", 40) + ".iso", false, strings.Repeat("X", 27) + ".ISO;1"},
	}
	for _, c := range cases {
		if got := string(isoIdentifier(c.name, c.dir)); got != c.want {
			t.Errorf("%q: got %q want %q", c.name, got, c.want)
		}
	}
	seen := map[string]bool{}
	a := uniqueID(isoIdentifier("x-1.txt", false), seen, false, false)
	b := uniqueID(isoIdentifier("x_1.txt", false), seen, false, false)
	if string(a) == string(b) || string(b) != "X_1~1.TXT;1" {
		t.Errorf("unique: %q %q", a, b)
	}
	if got := jolietName(jolietIdentifier("ünï:x.txt", false)); got != "ünï_x.txt" {
		t.Errorf("joliet %q", got)
	}
}
