package iso

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/fileio"
	"github.com/vdiskio/vdisk/internal/zero"
)

func createISO(t testing.TB, tree string, opts CreateOptions) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out.iso")
	if err := CreateFile(context.Background(), out, tree, opts); err != nil {
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
			if diff := cmp.Diff(xo, slices.Sorted(maps.Keys(seven))); diff != "" {
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
				slices.Sort(want)
				if diff := cmp.Diff(want, xo); diff != "" {
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
			if err := fsys.Extract(context.Background(), "/", ours); err != nil {
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
			img, err := formats.Open(context.Background(), iso, formats.OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer img.Close()
			d := specific(t, img)
			if d.VolumeID != c.opts.VolumeID || d.Joliet != c.opts.Joliet || d.RockRidge != c.opts.RockRidge {
				t.Errorf("info %v", d)
			}
		})
	}
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
	// Joliet names equal but for case are made unique, and readers see
	// them so.
	seen = map[string]bool{}
	var names []string
	for _, n := range []string{"Read.me", "READ.ME", "read.me"} {
		names = append(names, jolietName(uniqueID(jolietIdentifier(n, false), seen, false, true)))
	}
	for _, n := range []string{"Dir", "DIR"} {
		names = append(names, jolietName(uniqueID(jolietIdentifier(n, true), seen, true, true)))
	}
	if diff := cmp.Diff([]string{"Read.me", "READ.ME~1", "read.me~2", "Dir", "DIR~1"}, names); diff != "" {
		t.Errorf("unique Joliet names (-want +got):\n%s", diff)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "Read.me"), []byte("1"), 0o644)
	os.WriteFile(filepath.Join(dir, "READ.ME"), []byte("22"), 0o644)
	iso := createISO(t, dir, CreateOptions{Joliet: true})
	want := []string{"/READ.ME", "/Read.me~1"} // sources are read in name order
	if diff := cmp.Diff(want, xorrisoList(t, iso)); diff != "" {
		t.Errorf("xorriso (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, slices.Sorted(maps.Keys(sevenZipList(t, iso)))); diff != "" {
		t.Errorf("7z (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, ourList(t, openFS(t, iso), false)); diff != "" {
		t.Errorf("vdisk (-want +got):\n%s", diff)
	}
}

// TestCopyTarget: "-O iso" copies ISO images and refuses anything else.
func TestCopyTarget(t *testing.T) {
	src := smallISO(t, CreateOptions{RockRidge: true}, nil)
	d, err := formats.Lookup("iso")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		data []byte
		ok   bool
	}{
		{"iso", src, true},
		{"not iso", bytes.Repeat([]byte{0x5a}, len(src)), false},
	} {
		m := fileio.NewMem("out.iso", nil)
		w, err := d.Create(context.Background(), formats.CreateRequest{File: m, Name: "out.iso", Size: int64(len(c.data))})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.WriteAt(c.data, 0); err != nil {
			t.Fatal(err)
		}
		err = w.Flush()
		if c.ok && err != nil || !c.ok && !errors.Is(err, formats.ErrUnsupported) {
			t.Fatalf("%s: flush: %v", c.name, err)
		}
		if c.ok && !bytes.Equal(m.Bytes(), c.data) {
			t.Fatalf("%s: copy differs", c.name)
		}
	}
	if _, err := d.Create(context.Background(), formats.CreateRequest{File: fileio.NewMem("x", nil), Name: "x", Size: 4096}); !errors.Is(err, formats.ErrUnsupported) {
		t.Fatalf("tiny source: %v", err)
	}
}

// sparseSink keeps only the non-zero blocks written to it and reads the
// rest as zeros: a multi-gigabyte image costs little memory.
type sparseSink struct {
	blocks map[int64][]byte
	pos    int64
}

func (s *sparseSink) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		blk, in := s.pos/blockBytes, s.pos%blockBytes
		k := min(len(p), int(blockBytes-in))
		if !zero.Is(p[:k]) {
			b := s.blocks[blk]
			if b == nil {
				b = make([]byte, blockBytes)
				s.blocks[blk] = b
			}
			copy(b[in:], p[:k])
		}
		p, s.pos = p[k:], s.pos+int64(k)
	}
	return n, nil
}

func (s *sparseSink) ReadAt(p []byte, off int64) (int, error) {
	if off >= s.pos {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && off < s.pos {
		blk, in := off/blockBytes, off%blockBytes
		k := min(len(p)-n, int(blockBytes-in))
		if b := s.blocks[blk]; b != nil {
			copy(p[n:n+k], b[in:])
		} else {
			clear(p[n : n+k])
		}
		n, off = n+k, off+int64(k)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// TestMultiExtent: a file over 4 GiB - 2 KiB is stored as several
// extents and read back whole.
func TestMultiExtent(t *testing.T) {
	if os.Getenv("VDISK_LONG_TESTS") != "1" {
		t.Skip("writes a 4.5 GiB sparse image; set VDISK_LONG_TESTS=1 (TestMultiExtentSmall covers the layout)")
	}
	dir := t.TempDir()
	const size = 4<<30 + 512<<20
	f, err := os.Create(filepath.Join(dir, "big.img"))
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(size)
	f.WriteAt([]byte("start"), 0)
	f.WriteAt([]byte("end"), size-3)
	f.Close()
	sink := &sparseSink{blocks: map[int64][]byte{}}
	if err := Create(context.Background(), sink, os.DirFS(dir), CreateOptions{Joliet: true, RockRidge: true}); err != nil {
		t.Fatal(err)
	}
	fsys, err := Open(sink, sink.pos, "big.iso")
	if err != nil {
		t.Fatal(err)
	}
	e, err := fsys.Lookup("/big.img")
	if err != nil {
		t.Fatal(err)
	}
	if e.Size != size || len(e.extents) != 2 {
		t.Fatalf("size %d extents %d", e.Size, len(e.extents))
	}
	r, _ := fsys.Reader(e)
	head := make([]byte, 5)
	io.ReadFull(r, head)
	tail := make([]byte, 3)
	io.NewSectionReader(sink, e.extents[1].off+e.extents[1].length-3, 3).Read(tail)
	if string(head) != "start" || string(tail) != "end" {
		t.Fatalf("%q %q", head, tail)
	}
}

// TestMultiExtentSmall lowers the extent limit so that small files take
// several records; xorriso and vdisk read them back whole.
func TestMultiExtentSmall(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "src")
	os.Mkdir(dir, 0o755)
	data := bytes.Repeat([]byte("multi-extent "), 40000) // 520000 bytes
	os.WriteFile(filepath.Join(dir, "multi.bin"), data, 0o644)
	os.WriteFile(filepath.Join(dir, "after.txt"), []byte("after"), 0o644)
	out := filepath.Join(t.TempDir(), "m.iso")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := create(context.Background(), f, os.DirFS(dir), CreateOptions{Joliet: true, RockRidge: true}, 64<<10); err != nil {
		t.Fatal(err)
	}
	f.Close()
	fsys := openFS(t, out)
	e, err := fsys.Lookup("/multi.bin")
	if err != nil || e.Size != int64(len(data)) || len(e.extents) != 8 {
		t.Fatalf("%v size %d extents %d", err, e.Size, len(e.extents))
	}
	dest := t.TempDir()
	if err := fsys.Extract(context.Background(), "/multi.bin", dest); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dest, "multi.bin")); !bytes.Equal(got, data) {
		t.Fatal("vdisk extraction differs")
	}
	theirs := filepath.Join(t.TempDir(), "x")
	run(t, "xorriso", "-osirrox", "on", "-indev", out, "-extract", "/", theirs)
	if got, _ := os.ReadFile(filepath.Join(theirs, "multi.bin")); !bytes.Equal(got, data) {
		t.Fatal("xorriso extraction differs")
	}
	if diff := cmp.Diff(map[string]int64{"/multi.bin": int64(len(data)), "/after.txt": 5}, sevenZipList(t, out)); diff != "" {
		t.Errorf("7z (-want +got):\n%s", diff)
	}
}

// TestCreateLargeDirectory: directories spanning several blocks and many
// Rock Ridge continuation areas (long names) are listed the same by
// xorriso, 7z and vdisk.
func TestCreateLargeDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(filepath.Join(dir, "many"), 0o755)
	for i := range 300 {
		name := fmt.Sprintf("file number %03d with a rather long name to push entries into continuation areas %s.txt", i, strings.Repeat("z", i%90))
		os.WriteFile(filepath.Join(dir, "many", name), []byte(name), 0o644)
	}
	iso := createISO(t, dir, CreateOptions{Joliet: true, RockRidge: true})
	xo := xorrisoList(t, iso)
	if len(xo) != 301 {
		t.Fatalf("xorriso lists %d entries", len(xo))
	}
	fsys := openFS(t, iso)
	if diff := cmp.Diff(xo, ourList(t, fsys, false)); diff != "" {
		t.Errorf("xorriso vs vdisk (-xorriso +vdisk):\n%s", diff)
	}
	// 7z reads the Joliet tree: names cut at 64 characters, made unique.
	seven := sevenZipList(t, iso)
	if len(seven) != 301 {
		t.Fatalf("7z lists %d entries", len(seven))
	}
	e, _ := fsys.Lookup("/many")
	if e.extents[0].length <= blockBytes {
		t.Fatalf("directory is only %d bytes", e.extents[0].length)
	}
}

func TestCreateBootable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(filepath.Join(dir, "isolinux"), 0o755)
	os.MkdirAll(filepath.Join(dir, "boot"), 0o755)
	bios := bytes.Repeat([]byte{0x90, 0x91, 0x92, 0x93}, 2048) // 8 KiB
	os.WriteFile(filepath.Join(dir, "isolinux", "isolinux.bin"), bios, 0o644)
	os.WriteFile(filepath.Join(dir, "boot", "efi.img"), bytes.Repeat([]byte{0xef}, 1<<20), 0o644)
	opts := CreateOptions{VolumeID: "BOOTABLE", Joliet: true, RockRidge: true, SourceDateEpoch: epoch(1),
		Boot: &BootOptions{BIOSImage: "isolinux/isolinux.bin", InfoTable: true, EFIImage: "boot/efi.img"}}
	iso := createISO(t, dir, opts)
	report := run(t, "xorriso", "-indev", iso, "-report_el_torito", "plain")
	for _, want := range []string{"El Torito boot img :   1  BIOS  y   none", "El Torito boot img :   2  UEFI  y   none", "/isolinux/isolinux.bin", "/boot/efi.img"} {
		if !strings.Contains(report, want) {
			t.Errorf("xorriso report lacks %q:\n%s", want, report)
		}
	}
	d, err := Describe(mustOpen(t, iso))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Boot) != 2 || d.Boot[0].Platform != "x86" || d.Boot[0].LoadSectors != 4 || d.Boot[1].Platform != "UEFI" || d.Boot[1].LoadSectors != 2048 {
		t.Fatalf("boot entries %+v", d.Boot)
	}
	// The boot info table: PVD block 16, the file's block, its length and
	// the sum of its words from byte 64.
	fsys := openFS(t, iso)
	r, e, err := fsys.OpenFile("/isolinux/isolinux.bin")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	var sum uint32
	for i := 64; i < len(bios); i += 4 {
		sum += uint32(bios[i]) | uint32(bios[i+1])<<8 | uint32(bios[i+2])<<16 | uint32(bios[i+3])<<24
	}
	want := append([]byte(nil), bios...)
	le := func(off int, v uint32) {
		want[off], want[off+1], want[off+2], want[off+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
	}
	clear(want[8:64])
	le(8, 16)
	le(12, uint32(e.extents[0].off/blockBytes))
	le(16, uint32(len(bios)))
	le(20, sum)
	if !bytes.Equal(got, want) {
		t.Fatalf("boot info table: got % x", got[:24])
	}
	if d.Boot[0].LoadRBA != uint32(e.extents[0].off/blockBytes) {
		t.Fatalf("load RBA %d", d.Boot[0].LoadRBA)
	}
	// xorriso computes the same info table when it makes the image.
	ref := xorrisoISO(t, dir, "-R", "-b", "isolinux/isolinux.bin", "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table")
	refFS := openFS(t, ref)
	rr, re, _ := refFS.OpenFile("/isolinux/isolinux.bin")
	refData, _ := io.ReadAll(rr)
	if !bytes.Equal(refData[16:24], got[16:24]) || !bytes.Equal(refData[24:64], got[24:64]) {
		t.Fatalf("info table differs from xorriso's: % x vs % x (lba %d)", refData[8:24], got[8:24], re.extents[0].off/blockBytes)
	}
}

func mustOpen(t *testing.T, path string) (io.ReaderAt, int64, string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(data), int64(len(data)), path
}

// TestCreateVolumeIDs: the identifier options and the fixed timestamp are
// what xorriso reads from the primary volume descriptor (and Describe).
func TestCreateVolumeIDs(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a"), 0o644)
	opts := CreateOptions{VolumeID: "VOL_1", SystemID: "LINUX", PublisherID: "Some Publisher",
		PreparerID: "the preparer", ApplicationID: "APP 2.0", Joliet: true, SourceDateEpoch: epoch(1700000000)}
	iso := createISO(t, dir, opts)
	got := map[string]string{}
	for _, line := range strings.Split(run(t, "xorriso", "-indev", iso, "-pvd_info"), "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok {
			got[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	want := map[string]string{"Volume Id": "VOL_1", "System Id": "LINUX", "Publisher Id": "Some Publisher",
		"Preparer Id": "the preparer", "App Id": "APP 2.0",
		"Creation Time": "2023111422132000", "Modif. Time": "2023111422132000"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("xorriso -pvd_info %s = %q, want %q", k, got[k], v)
		}
	}
	d, err := Describe(mustOpen(t, iso))
	if err != nil {
		t.Fatal(err)
	}
	if d.VolumeID != opts.VolumeID || d.SystemID != opts.SystemID || d.PublisherID != opts.PublisherID ||
		d.PreparerID != opts.PreparerID || d.ApplicationID != opts.ApplicationID || !d.Created.Equal(*opts.SourceDateEpoch) {
		t.Errorf("Describe: %+v", d)
	}
}

// xorrisoBoot is xorriso's El Torito report: per boot image its platform,
// bootable flag, emulation, load segment, system type, load size and LBA.
func xorrisoBoot(t testing.TB, iso string) [][]string {
	t.Helper()
	var out [][]string
	for _, line := range strings.Split(run(t, "xorriso", "-indev", iso, "-report_el_torito", "plain"), "\n") {
		if rest, ok := strings.CutPrefix(line, "El Torito boot img :"); ok {
			if f := strings.Fields(rest); len(f) == 8 {
				out = append(out, f[1:])
			}
		}
	}
	return out
}

// TestCreateBootOptions: a BIOS load size other than the default, and a
// UEFI-only image (the EFI image in the default entry), as xorriso reads
// them.
func TestCreateBootOptions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(filepath.Join(dir, "boot"), 0o755)
	os.WriteFile(filepath.Join(dir, "boot", "bios.bin"), bytes.Repeat([]byte{0x90}, 6000), 0o644)
	os.WriteFile(filepath.Join(dir, "boot", "efi.img"), bytes.Repeat([]byte{0xef}, 100<<10), 0o644)
	for _, c := range []struct {
		name string
		boot BootOptions
		path string
		want []string // platform, bootable, emulation, segment, system type, load size
	}{
		{"bios load size 8", BootOptions{BIOSImage: "boot/bios.bin", LoadSectors: 8}, "/boot/bios.bin", []string{"BIOS", "y", "none", "0x0000", "0x00", "8"}},
		{"uefi only", BootOptions{EFIImage: "/boot/efi.img"}, "/boot/efi.img", []string{"UEFI", "y", "none", "0x0000", "0x00", "200"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			iso := createISO(t, dir, CreateOptions{RockRidge: true, Boot: &c.boot})
			e, err := openFS(t, iso).Lookup(c.path)
			if err != nil {
				t.Fatal(err)
			}
			want := [][]string{append(c.want, strconv.FormatInt(e.extents[0].off/blockBytes, 10))}
			if diff := cmp.Diff(want, xorrisoBoot(t, iso)); diff != "" {
				t.Errorf("xorriso -report_el_torito (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCreateSymlinks: Rock Ridge SL targets of every component kind (root,
// ".", "..", a component over one SL entry, a target over one record) are
// what xorriso extracts and what vdisk reads.
func TestCreateSymlinks(t *testing.T) {
	dir := t.TempDir()
	targets := map[string]string{
		"abs":  "/etc/hosts",
		"dots": "./x/../y",
		"up":   "../../..",
		"long": "/" + strings.Repeat("c", 300) + "/end",
		"many": strings.Repeat("component/", 90) + "last",
	}
	for name, target := range targets {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	iso := createISO(t, dir, CreateOptions{RockRidge: true})
	theirs := filepath.Join(t.TempDir(), "x")
	run(t, "xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/", theirs)
	if diff := cmp.Diff(treeDigest(t, dir), treeDigest(t, theirs)); diff != "" {
		t.Errorf("xorriso extraction (-source +xorriso):\n%s", diff)
	}
	fsys := openFS(t, iso)
	for name, target := range targets {
		e, err := fsys.Lookup("/" + name)
		if err != nil || e.Link != target || e.Mode&fs.ModeSymlink == 0 {
			t.Errorf("%s: %v %q %v, want %q", name, err, e.Link, e.Mode, target)
		}
	}
}
