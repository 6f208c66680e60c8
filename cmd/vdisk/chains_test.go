package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

// chainFormats are the formats whose images can be overlays of a base of
// the same format, with how the CLI names them, the extension, and whether
// qemu-img reads their differencing images (qemu's vpc and vhdx drivers
// refuse differencing disks; vdi is found only through --parent).
var chainFormats = []struct {
	name, ext  string
	qemuReads  bool
	parentFlag bool
}{
	{"qcow2", "qcow2", true, false},
	{"vmdk", "vmdk", true, false},
	{"vpc", "vhd", false, false},
	{"vhdx", "vhdx", false, false},
	{"vdi", "vdi", false, true},
}

// vdiskOK runs vdisk and fails the test on a non-zero exit.
func vdiskOK(t *testing.T, args ...string) string {
	t.Helper()
	out, errs, code := vdisk(t, args...)
	if code != 0 {
		t.Fatalf("vdisk %s: exit %d: %s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// requireSameContent compares img (format f) with the raw file raw: with
// qemu-img where it reads the format, else with vdisk compare (the reader
// of these formats is judged against qemu and libvhdi in its own package).
func requireSameContent(t *testing.T, f string, qemuReads bool, img, raw string, extra ...string) {
	t.Helper()
	if qemuReads {
		qemutest.RequireSame(t, f, img, "raw", raw)
		return
	}
	args := append(append([]string{"compare"}, extra...), "-f", f, "-F", "raw", img, raw)
	vdiskOK(t, args...)
	if f == "vpc" || f == "vhdx" {
		requireVhdiSame(t, img, raw)
	}
}

// incrementFixture writes the full image s0.raw and s1.raw..sN.raw, each
// the previous one with a few changes made by qemu-io: new data, zeros
// over data, data in a hole, a change at the unaligned end.
func incrementFixture(t *testing.T, dir string, n int) []string {
	t.Helper()
	p := func(s string) string { return filepath.Join(dir, s) }
	qemutest.Img(t, "create", "-q", "-f", "raw", p("s0.raw"), "6M")
	qemutest.IO(t, "raw", p("s0.raw"), "write -P 0x11 0 2M", "write -P 0x12 3M 1M", "write -P 0x13 5M 4k")
	raws := []string{p("s0.raw")}
	for i := 1; i <= n; i++ {
		cur := p(fmt.Sprintf("s%d.raw", i))
		copyFile(t, raws[i-1], cur)
		off := int64(i) * 448 << 10 % (6 << 20)
		qemutest.IO(t, "raw", cur,
			fmt.Sprintf("write -P %d %d 64k", 0x40+i, off),
			fmt.Sprintf("write -z %d 64k", (off+(3<<20))%(6<<20)),
			fmt.Sprintf("write -P %d %d 512", 0x80+i, 6<<20-512))
		raws = append(raws, cur)
	}
	return raws
}

// TestConvertBackingWritesOnlyDifferences converts s1.raw with -B over a
// full image of s0.raw in each chain format: the overlay reads as s1.raw
// over its base, and (qemu-img map for qcow2, vdisk map for the others) it
// stores only the clusters where s1 differs from s0.
func TestConvertBackingWritesOnlyDifferences(t *testing.T) {
	t.Parallel()
	for _, cf := range chainFormats {
		t.Run(cf.name, func(t *testing.T) {
			dir := t.TempDir()
			raws := incrementFixture(t, dir, 1)
			base, top := filepath.Join(dir, "base."+cf.ext), filepath.Join(dir, "top."+cf.ext)
			vdiskOK(t, "convert", "-q", "-f", "raw", "-O", cf.name, raws[0], base)
			vdiskOK(t, "convert", "-q", "-f", "raw", "-O", cf.name, "-B", "base."+cf.ext, "-F", cf.name, raws[1], top)
			var parents []string
			if cf.parentFlag {
				parents = []string{"--parent", base}
			}
			requireSameContent(t, cf.name, cf.qemuReads, top, raws[1], parents...)
			own := ownBytes(t, cf.name, top, parents...)
			// s1 changes 64 KiB of data, 64 KiB of zeros and the last
			// sector: at most three blocks of the format (VHD, VHDX write
			// whole 2 MiB differencing blocks, VDI 1 MiB ones), at least
			// the 64 KiB grains.
			if own < 128<<10 || own > 6<<20 {
				t.Errorf("overlay stores %d bytes of its own; s1 differs from s0 in 3 clusters", own)
			}
			if cf.name == "qcow2" && own != 3*64<<10 {
				t.Errorf("qcow2 overlay allocates %d bytes, want the 3 differing clusters (%d)", own, 3*64<<10)
			}
		})
	}
}

// ownBytes is how much of img's virtual disk its own layer allocates (data
// or zeros), by qemu-img map for qcow2 and vmdk, by vdisk map otherwise.
func ownBytes(t *testing.T, f, img string, extra ...string) int64 {
	t.Helper()
	var out string
	if f == "qcow2" || f == "vmdk" {
		out = qemutest.Img(t, "map", "--output=json", "-f", f, img)
	} else {
		out = vdiskOK(t, append(append([]string{"map", "--output=json"}, extra...), "-f", f, img)...)
	}
	var exts []struct {
		Length  int64 `json:"length"`
		Depth   int   `json:"depth"`
		Present *bool `json:"present"`
	}
	if err := json.Unmarshal([]byte(out), &exts); err != nil {
		t.Fatalf("map of %s: %v\n%s", img, err, out)
	}
	var n int64
	for _, e := range exts {
		// Past a shorter backing's end qemu reports depth 0, not present.
		if e.Depth == 0 && (e.Present == nil || *e.Present) {
			n += e.Length
		}
	}
	return n
}

// TestIncrementalChainRestores makes a full image of s0 and ten increments
// (convert -B over the previous increment) in each format, and a mixed
// chain (vhdx full and increments, then qcow2 increments over them): each
// increment reads as its raw state, and the last restores to s10 bit-exact
// (converted to raw, qemu-img compare or vdisk compare).
func TestIncrementalChainRestores(t *testing.T) {
	t.Parallel()
	type layer struct{ name, ext string }
	chains := map[string][]layer{}
	for _, cf := range chainFormats {
		l := make([]layer, 11)
		for i := range l {
			l[i] = layer{cf.name, cf.ext}
		}
		chains[cf.name] = l
	}
	mixed := make([]layer, 11)
	for i := range mixed {
		mixed[i] = layer{"vhdx", "vhdx"}
		if i > 5 {
			mixed[i] = layer{"qcow2", "qcow2"}
		}
	}
	chains["mixed"] = mixed
	for name, layers := range chains {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			raws := incrementFixture(t, dir, 10)
			prev := ""
			var parents []string // VDI layers are found by --parent
			for i, l := range layers {
				img := fmt.Sprintf("inc%d.%s", i, l.ext)
				args := append([]string{"convert", "-q", "-f", "raw", "-O", l.name}, parents...)
				if prev != "" {
					args = append(args, "-B", prev, "-F", layers[i-1].name)
				}
				vdiskOK(t, append(args, raws[i], filepath.Join(dir, img))...)
				prev = img
				if l.name == "vdi" {
					parents = append(parents, "--parent", filepath.Join(dir, img))
				}
			}
			last := filepath.Join(dir, prev)
			restored := filepath.Join(dir, "restored.raw")
			vdiskOK(t, append(append([]string{"convert", "-q"}, parents...), "-O", "raw", last, restored)...)
			qemutest.RequireSame(t, "raw", restored, "raw", raws[10])
			if name == "qcow2" || name == "vmdk" {
				qemutest.RequireSame(t, name, last, "raw", raws[10])
				qemutest.RequireClean(t, name, last)
			}
			if name == "vpc" || name == "vhdx" {
				requireVhdiSame(t, last, raws[10]) // libvhdi follows all 11 links
			}
			out := vdiskOK(t, append(append([]string{"info"}, parents...), "--backing-chain", last)...)
			if got := strings.Count(out, "image: "); got != 11 {
				t.Errorf("info --backing-chain shows %d images, want 11:\n%s", got, out)
			}
		})
	}
}

// copyFile copies src to dst with cp, keeping holes.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", "--sparse=always", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp %s %s: %v: %s", src, dst, err, out)
	}
}

// chainFiles makes base (s0), top (convert -B base s1) and new (convert -B
// base s2) in format cf with vdisk, and returns the raw states and the
// --parent flags VDI needs.
func chainFiles(t *testing.T, dir, f, ext string) (raws []string, parents []string) {
	t.Helper()
	raws = incrementFixture(t, dir, 2)
	p := func(n string) string { return filepath.Join(dir, n+"."+ext) }
	vdiskOK(t, "convert", "-q", "-f", "raw", "-O", f, raws[0], p("base"))
	if f == "vdi" {
		parents = []string{"--parent", p("base"), "--parent", p("new"), "--parent", p("top")}
	}
	vdiskOK(t, "convert", "-q", "-f", "raw", "-O", f, "-B", "base."+ext, "-F", f, raws[1], p("top"))
	vdiskOK(t, "convert", "-q", "-f", "raw", "-O", f, "-B", "base."+ext, "-F", f, raws[2], p("new"))
	return raws, parents
}

// backingOf is the backing file vdisk info shows for img ("" for none).
func backingOf(t *testing.T, img string, parents []string) string {
	t.Helper()
	out := vdiskOK(t, append(append([]string{"info", "--output=json"}, parents...), img)...)
	var info struct {
		Backing string `json:"full-backing-filename"`
		Name    string `json:"backing-filename"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("info %s: %v\n%s", img, err, out)
	}
	return info.Name
}

// TestRebaseCommitEveryFormat rebases (safe onto another overlay of the
// base, -u there and back, flatten) and commits (emptying the top, and -d)
// in every chain format: the images read as the raw states they should
// (qemu-img compare for vmdk, vdisk compare where qemu cannot read
// differencing disks), and the links are the ones asked for.
func TestRebaseCommitEveryFormat(t *testing.T) {
	t.Parallel()
	for _, cf := range chainFormats {
		if cf.name == "qcow2" {
			continue // chain/ and rebase_test.go judge qcow2 against qemu-img
		}
		t.Run(cf.name, func(t *testing.T) {
			same := func(t *testing.T, img, raw string, parents []string) {
				t.Helper()
				requireSameContent(t, cf.name, cf.qemuReads, img, raw, parents...)
			}
			t.Run("rebase", func(t *testing.T) {
				dir := t.TempDir()
				raws, parents := chainFiles(t, dir, cf.name, cf.ext)
				top := filepath.Join(dir, "top."+cf.ext)
				args := func(a ...string) []string { return append(append([]string{"rebase"}, parents...), append(a, top)...) }
				vdiskOK(t, args("-b", "new."+cf.ext, "-F", cf.name)...)
				same(t, top, raws[1], parents)
				if got := backingOf(t, top, parents); cf.name != "vdi" && got != "new."+cf.ext {
					t.Fatalf("backing after rebase: %q", got)
				}
				own := ownBytes(t, cf.name, top, parents...)
				// -u onto the base and back onto new: the link only.
				vdiskOK(t, args("-u", "-b", "base."+cf.ext, "-F", cf.name)...)
				vdiskOK(t, args("-u", "-b", "new."+cf.ext, "-F", cf.name)...)
				same(t, top, raws[1], parents)
				if got := ownBytes(t, cf.name, top, parents...); got != own {
					t.Errorf("-u changed the top's allocation: %d bytes, was %d", got, own)
				}
				vdiskOK(t, args("-b", "")...)
				same(t, top, raws[1], nil)
				if got := backingOf(t, top, nil); got != "" {
					t.Fatalf("backing after flattening: %q", got)
				}
				if cf.qemuReads {
					qemutest.RequireClean(t, cf.name, top)
				}
			})
			for _, keep := range []bool{false, true} {
				t.Run(fmt.Sprintf("commit-keep=%v", keep), func(t *testing.T) {
					dir := t.TempDir()
					raws, parents := chainFiles(t, dir, cf.name, cf.ext)
					base, top := filepath.Join(dir, "base."+cf.ext), filepath.Join(dir, "top."+cf.ext)
					ownBefore := ownBytes(t, cf.name, top, parents...)
					var qdir string
					if cf.name == "vmdk" { // qemu-img commits vmdk chains too (it cannot empty a vmdk top)
						qdir = copyTree(t, dir)
						qemutest.Img(t, "commit", "-q", "-d", filepath.Join(qdir, "top.vmdk"))
					}
					args := append(append([]string{"commit", "-q"}, parents...), top)
					if keep {
						args = append(args[:len(args)-1], "-d", top)
					}
					vdiskOK(t, args...)
					same(t, base, raws[1], nil)
					same(t, top, raws[1], parents)
					own := ownBytes(t, cf.name, top, parents...)
					// -d keeps the top's content; relinking a vhdx top to
					// the new base rewrites it in whole 2 MiB blocks.
					if keep && (own < ownBefore || own > ownBefore+4<<20) || !keep && own != 0 {
						t.Errorf("top allocates %d bytes after commit (-d %v); %d before", own, keep, ownBefore)
					}
					if cf.qemuReads {
						qemutest.RequireClean(t, cf.name, base)
						qemutest.RequireClean(t, cf.name, top)
					}
					if qdir != "" {
						qbase := filepath.Join(qdir, "base.vmdk")
						qemutest.RequireSame(t, "vmdk", base, "vmdk", qbase)
						vm := mapShape(t, qemutest.Img(t, "map", "--output=json", base))
						qm := mapShape(t, qemutest.Img(t, "map", "--output=json", qbase))
						if vm != qm {
							t.Errorf("base map after vdisk commit\n%s\nqemu-img commit\n%s", vm, qm)
						}
					}
				})
			}
		})
	}
}

// mapShape is a map's extents without host offsets (files differ between
// tools that allocate alike), merged where adjacent and alike.
func mapShape(t *testing.T, out string) string {
	t.Helper()
	var exts []struct {
		Start, Length int64
		Depth         int
		Zero, Data    bool
	}
	if err := json.Unmarshal([]byte(out), &exts); err != nil {
		t.Fatalf("map: %v\n%s", err, out)
	}
	var b strings.Builder
	for i := 0; i < len(exts); i++ {
		e := exts[i]
		for i+1 < len(exts) && exts[i+1].Depth == e.Depth && exts[i+1].Zero == e.Zero && exts[i+1].Data == e.Data {
			e.Length += exts[i+1].Length
			i++
		}
		fmt.Fprintf(&b, "%d+%d depth %d zero %v data %v\n", e.Start, e.Length, e.Depth, e.Zero, e.Data)
	}
	return b.String()
}

// copyTree copies every file of dir into a new directory (the links are
// relative, so the copy is a chain of its own for qemu-img to change).
func copyTree(t *testing.T, dir string) string {
	t.Helper()
	out := t.TempDir()
	if b, err := exec.Command("sh", "-c", "cp --sparse=always \"$0\"/* \"$1\"/", dir, out).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, b)
	}
	return out
}

// TestMixedChainAgainstQemu builds s0 as base.vmdk, s1 as mid.vmdk over it
// and s2 as top.qcow2 over mid.vmdk (convert -B) and judges info
// --backing-chain, map, check, compare and convert by qemu-img on the same
// chain, then rebase (safe, onto base.vmdk) and commit -d (into mid.vmdk)
// against qemu-img rebase and commit on a copy: same content, same map.
func TestMixedChainAgainstQemu(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	raws := incrementFixture(t, dir, 2)
	vdiskOK(t, "convert", "-q", "-f", "raw", "-O", "vmdk", raws[0], p("base.vmdk"))
	vdiskOK(t, "convert", "-q", "-f", "raw", "-O", "vmdk", "-B", "base.vmdk", "-F", "vmdk", raws[1], p("mid.vmdk"))
	vdiskOK(t, "convert", "-q", "-f", "raw", "-O", "qcow2", "-B", "mid.vmdk", "-F", "vmdk", raws[2], p("top.qcow2"))
	top := p("top.qcow2")
	qemutest.RequireSame(t, "qcow2", top, "raw", raws[2])
	qemutest.RequireClean(t, "qcow2", top)
	qinfo := qemutest.Img(t, "info", "--backing-chain", top)
	vinfo := vdiskOK(t, "info", "--backing-chain", top)
	if q, v := strings.Count(qinfo, "image: "), strings.Count(vinfo, "image: "); q != 3 || v != 3 {
		t.Fatalf("info --backing-chain: qemu-img %d images, vdisk %d, want 3:\n%s\n%s", q, v, qinfo, vinfo)
	}
	if q, v := mapShape(t, qemutest.Img(t, "map", "--output=json", top)), mapShape(t, vdiskOK(t, "map", "--output=json", top)); q != v {
		t.Errorf("map: qemu-img\n%s\nvdisk\n%s", q, v)
	}
	vdiskOK(t, "check", top)
	vdiskOK(t, "compare", top, raws[2])
	vdiskOK(t, "convert", "-q", "-O", "raw", top, p("out.raw"))
	qemutest.RequireSame(t, "raw", p("out.raw"), "raw", raws[2])

	t.Run("rebase", func(t *testing.T) {
		d := copyTree(t, dir)
		q := copyTree(t, dir)
		vdiskOK(t, "rebase", "-b", "base.vmdk", "-F", "vmdk", filepath.Join(d, "top.qcow2"))
		qemutest.Img(t, "rebase", "-b", "base.vmdk", "-F", "vmdk", filepath.Join(q, "top.qcow2"))
		qemutest.RequireSame(t, "qcow2", filepath.Join(d, "top.qcow2"), "raw", raws[2])
		qemutest.RequireClean(t, "qcow2", filepath.Join(d, "top.qcow2"))
		vm := mapShape(t, qemutest.Img(t, "map", "--output=json", filepath.Join(d, "top.qcow2")))
		qm := mapShape(t, qemutest.Img(t, "map", "--output=json", filepath.Join(q, "top.qcow2")))
		if vm != qm {
			t.Errorf("map after vdisk rebase\n%s\nqemu-img rebase\n%s", vm, qm)
		}
	})
	t.Run("commit", func(t *testing.T) {
		d := copyTree(t, dir)
		q := copyTree(t, dir)
		vdiskOK(t, "commit", "-q", "-d", filepath.Join(d, "top.qcow2"))
		qemutest.Img(t, "commit", "-q", "-d", filepath.Join(q, "top.qcow2"))
		for _, n := range []string{"mid.vmdk", "top.qcow2"} {
			f := strings.TrimPrefix(filepath.Ext(n), ".")
			qemutest.RequireSame(t, f, filepath.Join(d, n), "raw", raws[2])
			qemutest.RequireClean(t, f, filepath.Join(d, n))
			vm := mapShape(t, qemutest.Img(t, "map", "--output=json", filepath.Join(d, n)))
			qm := mapShape(t, qemutest.Img(t, "map", "--output=json", filepath.Join(q, n)))
			if vm != qm {
				t.Errorf("%s: map after vdisk commit\n%s\nqemu-img commit\n%s", n, vm, qm)
			}
		}
	})
}

// TestMixedChainOverVHDX: s2 as top.qcow2 over mid.vhdx over base.vhdx
// (qemu-img cannot read VHDX differencing disks: vdisk compare judges,
// qemu-img check the qcow2 layer): info --backing-chain, map, check,
// compare, convert; then a safe rebase onto base.vhdx keeps the content
// and commit empties the top into mid.vhdx, which then reads as s2.
func TestMixedChainOverVHDX(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	raws := incrementFixture(t, dir, 2)
	vdiskOK(t, "convert", "-q", "-f", "raw", "-O", "vhdx", raws[0], p("base.vhdx"))
	vdiskOK(t, "convert", "-q", "-f", "raw", "-O", "vhdx", "-B", "base.vhdx", "-F", "vhdx", raws[1], p("mid.vhdx"))
	vdiskOK(t, "convert", "-q", "-f", "raw", "-O", "qcow2", "-B", "mid.vhdx", "-F", "vhdx", raws[2], p("top.qcow2"))
	top := p("top.qcow2")
	if n := strings.Count(vdiskOK(t, "info", "--backing-chain", top), "image: "); n != 3 {
		t.Fatalf("info --backing-chain shows %d images", n)
	}
	shape := mapShape(t, vdiskOK(t, "map", "--output=json", top))
	for _, d := range []string{"depth 0", "depth 1", "depth 2"} {
		if !strings.Contains(shape, d) {
			t.Errorf("map shows no extent at %s:\n%s", d, shape)
		}
	}
	vdiskOK(t, "check", top)
	requireCleanAlone(t, top)
	vdiskOK(t, "compare", top, raws[2])
	vdiskOK(t, "convert", "-q", "-O", "raw", top, p("out.raw"))
	qemutest.RequireSame(t, "raw", p("out.raw"), "raw", raws[2])
	d := copyTree(t, dir)
	vdiskOK(t, "rebase", "-b", "base.vhdx", "-F", "vhdx", filepath.Join(d, "top.qcow2"))
	vdiskOK(t, "compare", filepath.Join(d, "top.qcow2"), raws[2])
	requireCleanAlone(t, filepath.Join(d, "top.qcow2"))
	vdiskOK(t, "commit", "-q", top)
	vdiskOK(t, "compare", p("mid.vhdx"), raws[2])
	vdiskOK(t, "compare", top, raws[2])
	requireCleanAlone(t, top)
	if shape := mapShape(t, vdiskOK(t, "map", "--output=json", top)); strings.Contains(shape, "depth 0") {
		t.Errorf("top.qcow2 still allocates after commit:\n%s", shape)
	}
}

// requireCleanAlone runs qemu-img check on a qcow2 image without its
// backing chain (qemu cannot open VHDX differencing disks below it).
func requireCleanAlone(t *testing.T, path string) {
	t.Helper()
	spec := fmt.Sprintf(`json:{"driver":"qcow2","backing":null,"file":{"driver":"file","filename":%q}}`, path)
	if r := qemutest.Exec(t, "qemu-img", "check", spec); r.Code != 0 {
		t.Fatalf("qemu-img check %s: exit %d: %s%s", path, r.Code, r.Stdout, r.Stderr)
	}
}

// vdiskFails runs vdisk, requires a non-zero exit with a one-line error
// that contains every want, and returns it.
func vdiskFails(t *testing.T, want []string, args ...string) string {
	t.Helper()
	out, errs, code := vdisk(t, args...)
	if code == 0 {
		t.Fatalf("vdisk %s succeeded: %s", strings.Join(args, " "), out)
	}
	if n := strings.Count(strings.TrimSpace(errs), "\n"); n > 0 {
		t.Errorf("error is %d lines:\n%s", n+1, errs)
	}
	for _, w := range want {
		if !strings.Contains(errs, w) {
			t.Errorf("error does not say %q:\n%s", w, errs)
		}
	}
	return errs
}

// TestBadLinks: a missing parent, a parent replaced by another image of
// the same name (a new VMDK CID, VHD unique id, VHDX DataWriteGuid, VDI
// UUID), a loop and a chain deeper than the limit (64) are each one line
// naming the link, for info, convert and rebase alike; nothing is written.
func TestBadLinks(t *testing.T) {
	t.Parallel()
	changed := map[string]string{"vmdk": "parentCID", "vpc": "UUID", "vhdx": "DataWriteGuid", "vdi": "not among the supplied parents", "qcow2": ""}
	for _, cf := range append(chainFormats[1:], chainFormats[0]) {
		t.Run(cf.name, func(t *testing.T) {
			dir := t.TempDir()
			raws, parents := chainFiles(t, dir, cf.name, cf.ext)
			base, top := filepath.Join(dir, "base."+cf.ext), filepath.Join(dir, "top."+cf.ext)
			if cf.name == "vdi" {
				parents = []string{"--parent", filepath.Join(dir, "new.vdi")} // not top's parent
			}
			if want := changed[cf.name]; want != "" {
				// Replaced by another image under the same name.
				vdiskOK(t, "convert", "-q", "-f", "raw", "-O", cf.name, raws[1], base+".other")
				if err := os.Rename(base+".other", base); err != nil {
					t.Fatal(err)
				}
				if cf.name == "vdi" {
					parents = []string{"--parent", base}
				}
				vdiskFails(t, []string{want}, append(append([]string{"info"}, parents...), "--backing-chain", top)...)
				vdiskFails(t, []string{want}, append(append([]string{"convert"}, parents...), "-O", "raw", top, filepath.Join(dir, "out.raw"))...)
				if _, err := os.Stat(filepath.Join(dir, "out.raw")); err == nil {
					t.Error("a failed convert left its output")
				}
			}
			if err := os.Remove(base); err != nil {
				t.Fatal(err)
			}
			name := "base." + cf.ext
			if cf.name == "vdi" {
				name = "--parent" // VDI names its parent by UUID only
			}
			vdiskFails(t, []string{name}, "info", "--backing-chain", top)
			vdiskFails(t, []string{name}, "compare", top, raws[1])
			vdiskFails(t, []string{name}, "rebase", "-b", "", top)
			vdiskFails(t, []string{name}, "commit", top)
		})
	}
	t.Run("loop", func(t *testing.T) {
		dir := t.TempDir()
		p := func(n string) string { return filepath.Join(dir, n) }
		qemutest.Img(t, "create", "-q", "-f", "qcow2", "-u", "-b", "b.qcow2", "-F", "vmdk", p("a.qcow2"), "1M")
		qemutest.Img(t, "create", "-q", "-f", "vmdk", p("c.vmdk"), "1M")
		qemutest.Img(t, "create", "-q", "-f", "qcow2", "-u", "-b", "a.qcow2", "-F", "qcow2", p("b.qcow2"), "1M")
		qemutest.Img(t, "rebase", "-q", "-u", "-f", "qcow2", "-b", "b.qcow2", "-F", "qcow2", p("a.qcow2"))
		vdiskFails(t, []string{"backing loop", "a.qcow2", "b.qcow2"}, "info", "--backing-chain", p("a.qcow2"))
		vdiskFails(t, []string{"backing loop"}, "convert", "-O", "raw", p("a.qcow2"), p("out.raw"))
	})
	t.Run("too-deep", func(t *testing.T) {
		dir := t.TempDir()
		p := func(i int) string { return filepath.Join(dir, fmt.Sprintf("l%d.qcow2", i)) }
		qemutest.Img(t, "create", "-q", "-f", "qcow2", p(0), "1M")
		for i := 1; i <= 70; i++ {
			qemutest.Img(t, "create", "-q", "-f", "qcow2", "-u", "-b", filepath.Base(p(i-1)), "-F", "qcow2", p(i), "1M")
		}
		vdiskOK(t, "info", "--backing-chain", p(60))
		vdiskFails(t, []string{"64"}, "info", "--backing-chain", p(70))
		vdiskFails(t, []string{"64"}, "compare", p(70), p(0))
	})
}

// TestBackingOfAnotherSize: an overlay larger than its backing file reads
// zeros past the backing's end and one smaller reads its own size, as
// qemu reads them (qcow2 over vmdk); convert -B over a smaller base writes
// the part past its end.
func TestBackingOfAnotherSize(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	qemutest.Img(t, "create", "-q", "-f", "vmdk", p("small.vmdk"), "2M")
	qemutest.IO(t, "vmdk", p("small.vmdk"), "write -P 0x31 0 2M")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", "-b", "small.vmdk", "-F", "vmdk", p("big.qcow2"), "4M")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", "-b", "small.vmdk", "-F", "vmdk", p("tiny.qcow2"), "1M")
	for _, n := range []string{"big.qcow2", "tiny.qcow2"} {
		vdiskOK(t, "convert", "-q", "-O", "raw", p(n), p(n+".v.raw"))
		qemutest.Img(t, "convert", "-O", "raw", p(n), p(n+".q.raw"))
		qemutest.RequireSame(t, "raw", p(n+".v.raw"), "raw", p(n+".q.raw"))
	}
	qemutest.Img(t, "create", "-q", "-f", "raw", p("s.raw"), "4M")
	qemutest.IO(t, "raw", p("s.raw"), "write -P 0x31 0 2M", "write -P 0x32 3M 64k")
	vdiskOK(t, "convert", "-q", "-f", "raw", "-O", "qcow2", "-B", "small.vmdk", "-F", "vmdk", p("s.raw"), p("d.qcow2"))
	qemutest.RequireSame(t, "qcow2", p("d.qcow2"), "raw", p("s.raw"))
	if own := ownBytes(t, "qcow2", p("d.qcow2")); own != 64<<10 {
		t.Errorf("overlay over the smaller base allocates %d bytes, want the one differing cluster", own)
	}
}

// chainLength is the number of images in img's backing chain, as vdisk
// info --backing-chain lists them.
func chainLength(t *testing.T, img string) int {
	t.Helper()
	return strings.Count(vdiskOK(t, "info", "--backing-chain", img), "image: ")
}

// requireVhdiSame mounts the VHD or VHDX differencing chain of img with
// libvhdi's vhdimount (FUSE) and requires the top layer it shows to equal
// raw: the content judge for differencing VHDs, which qemu's vpc driver
// reads as if they had no parent, and VHDX ones, which qemu cannot open.
// vhdimount attaches each parent only when the child's parent identifier
// (VHDX: parent_linkage) is the parent's (VHDX: its DataWriteGuid). Without the tool, FUSE or root it logs and returns
// (fails when VDISK_REQUIRE_QEMU=1).
func requireVhdiSame(t *testing.T, img, raw string) {
	t.Helper()
	tool, err := exec.LookPath("vhdimount")
	if err == nil && os.Geteuid() != 0 {
		err = fmt.Errorf("not root")
	}
	if err == nil {
		_, err = os.Stat("/dev/fuse")
	}
	if err != nil {
		if os.Getenv("VDISK_REQUIRE_QEMU") == "1" {
			t.Fatalf("vhdimount: %v", err)
		}
		t.Logf("vhdimount unusable (%v); libvhdi does not judge %s", err, img)
		return
	}
	mnt := t.TempDir()
	if out, err := exec.Command(tool, img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("vhdimount %s: %v\n%s", img, err, out)
	}
	defer exec.Command("umount", mnt).Run()
	layers, _ := filepath.Glob(filepath.Join(mnt, "vhdi*"))
	if len(layers) == 0 {
		t.Fatalf("vhdimount %s shows no disk", img)
	}
	// vhdi1 is the bottom of the chain, vhdiN the image itself.
	top := filepath.Join(mnt, fmt.Sprintf("vhdi%d", len(layers)))
	if want := chainLength(t, img); len(layers) != want {
		t.Fatalf("vhdimount %s attaches %d layers; the chain has %d (a parent link libvhdi does not follow)", img, len(layers), want)
	}
	fi, err := os.Stat(raw)
	if err != nil {
		t.Fatal(err)
	}
	// A VHD's size is rounded up to its CHS geometry: the raw state is
	// compared over its own length (vdisk compare checks the rest reads
	// zeros).
	if out, err := exec.Command("cmp", "-n", fmt.Sprint(fi.Size()), top, raw).CombinedOutput(); err != nil {
		t.Fatalf("libvhdi reads %s differently from %s: %s", img, raw, out)
	}
}

// TestCommitIntoFlatVMDK commits a sparse delta into a monolithicFlat
// base: in place (the base stays monolithicFlat, its descriptor file gets
// a new CID by rename, only the top's grains are written into the flat
// extent), judged against qemu-img commit on a copy (base content, create
// type, qemu-img check), and the emptied top reads as before over it.
func TestCommitIntoFlatVMDK(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	qemutest.Img(t, "create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat", p("base.vmdk"), "8M")
	qemutest.IO(t, "vmdk", p("base.vmdk"), "write -P 0x11 0 3M", "write -P 0x12 5M 2M")
	qemutest.Img(t, "create", "-q", "-f", "vmdk", "-b", "base.vmdk", "-F", "vmdk", p("top.vmdk"))
	qemutest.IO(t, "vmdk", p("top.vmdk"), "write -P 0x31 1M 64k", "write -z 5M 64k", "write -P 0x32 7M 512k")
	want := qemutest.ToRaw(t, "vmdk", p("top.vmdk"))
	qdir := copyTree(t, dir)
	qemutest.Img(t, "commit", "-q", "-d", filepath.Join(qdir, "top.vmdk"))
	vdiskOK(t, "commit", "-q", p("top.vmdk"))
	qemutest.RequireSame(t, "vmdk", p("base.vmdk"), "vmdk", filepath.Join(qdir, "base.vmdk"))
	qemutest.RequireSame(t, "vmdk", p("base.vmdk"), "raw", want)
	qemutest.RequireSame(t, "vmdk", p("top.vmdk"), "raw", want)
	qemutest.RequireClean(t, "vmdk", p("top.vmdk"))
	info := qemutest.Info(t, "vmdk", p("base.vmdk"))
	spec, _ := info["format-specific"].(map[string]any)
	data, _ := spec["data"].(map[string]any)
	if ct := data["create-type"]; ct != "monolithicFlat" {
		t.Fatalf("the committed base is %v, want monolithicFlat kept", ct)
	}
	if own := ownBytes(t, "vmdk", p("top.vmdk")); own != 0 {
		t.Errorf("the emptied top allocates %d bytes", own)
	}
	if ents, _ := filepath.Glob(p(".*tmp")); len(ents) != 0 {
		t.Errorf("temporary files left: %v", ents)
	}
}
