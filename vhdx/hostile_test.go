package vhdx

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/google/go-cmp/cmp"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/formats"
)

// hostileBase is a small dynamic image with two allocated 1 MiB blocks.
func hostileBase(t testing.TB) []byte {
	return memImage(t, 8<<20, "block_size=1M", map[int64][]byte{0: filled(4096, 1), 3 << 20: filled(4096, 2)})
}

func TestHostile(t *testing.T) {
	base := hostileBase(t)
	le := binary.LittleEndian
	cases := []struct {
		name   string
		mutate func(b []byte) []byte
		kind   error // nil: must open
		limits formats.Limits
	}{
		{"wrong-ident", func(b []byte) []byte { b[0] = 'x'; return b }, formats.ErrCorrupt, formats.Limits{}},
		{"both-headers-bad-crc", func(b []byte) []byte { b[header1Offset+100] ^= 1; b[header2Offset+100] ^= 1; return b }, formats.ErrCorrupt, formats.Limits{}},
		{"one-header-bad-crc", func(b []byte) []byte { b[header2Offset+100] ^= 1; return b }, nil, formats.Limits{}},
		{"equal-seq-different", func(b []byte) []byte {
			patchHeaders(b, func(h *header) { h.Sequence = 7 })
			h, _ := decodeHeader(b[header1Offset:])
			h.FileWriteGUID[0] ^= 1
			copy(b[header1Offset:], h.encode())
			return b
		}, formats.ErrCorrupt, formats.Limits{}},
		{"equal-seq-identical", func(b []byte) []byte { patchHeaders(b, func(h *header) { h.Sequence = 7 }); return b }, nil, formats.Limits{}},
		{"version-2", func(b []byte) []byte { patchHeaders(b, func(h *header) { h.Version = 2 }); return b }, formats.ErrUnsupported, formats.Limits{}},
		{"log-version-1", func(b []byte) []byte { patchHeaders(b, func(h *header) { h.LogVersion = 1 }); return b }, formats.ErrUnsupported, formats.Limits{}},
		{"log-length-unaligned", func(b []byte) []byte { patchHeaders(b, func(h *header) { h.LogLength = 1<<20 + 4096 }); return b }, formats.ErrCorrupt, formats.Limits{}},
		{"log-past-eof", func(b []byte) []byte { patchHeaders(b, func(h *header) { h.LogOffset = 1 << 40 }); return b }, formats.ErrCorrupt, formats.Limits{}},
		{"log-in-header-section", func(b []byte) []byte { patchHeaders(b, func(h *header) { h.LogOffset = 0 }); return b }, formats.ErrCorrupt, formats.Limits{}},
		{"region-tables-bad-crc", func(b []byte) []byte { b[region1Offset+50] ^= 1; b[region2Offset+50] ^= 1; return b }, formats.ErrCorrupt, formats.Limits{}},
		{"region-table-1-bad", func(b []byte) []byte { b[region1Offset+50] ^= 1; return b }, nil, formats.Limits{}},
		{"regions-2047", func(b []byte) []byte {
			patchRegions(b, func(rs []region) []region { return append(rs, unknownRegions(2047-len(rs))...) })
			return b
		}, nil, formats.Limits{}},
		{"regions-2048", func(b []byte) []byte {
			patchRegions(b, func(rs []region) []region { return append(rs, unknownRegions(2048-len(rs))...) })
			return b
		}, formats.ErrCorrupt, formats.Limits{}},
		{"unknown-required-region", func(b []byte) []byte {
			patchRegions(b, func(rs []region) []region {
				r := unknownRegions(1)[0]
				r.Required = true
				return append(rs, r)
			})
			return b
		}, formats.ErrUnsupported, formats.Limits{}},
		{"region-unaligned", func(b []byte) []byte {
			patchRegions(b, func(rs []region) []region { rs[0].Offset += 4096; return rs })
			return b
		}, formats.ErrCorrupt, formats.Limits{}},
		{"regions-overlap", func(b []byte) []byte {
			patchRegions(b, func(rs []region) []region { rs[1].Offset = rs[0].Offset; return rs })
			return b
		}, formats.ErrCorrupt, formats.Limits{}},
		{"region-overlaps-log", func(b []byte) []byte {
			patchRegions(b, func(rs []region) []region { rs[0].Offset = 1 << 20; return rs })
			return b
		}, formats.ErrCorrupt, formats.Limits{}},
		{"region-past-eof", func(b []byte) []byte {
			patchRegions(b, func(rs []region) []region { rs[0].Offset = 1 << 40; return rs })
			return b
		}, formats.ErrCorrupt, formats.Limits{}},
		{"two-bat-regions", func(b []byte) []byte {
			patchRegions(b, func(rs []region) []region { return append(rs, rs[0]) })
			return b
		}, formats.ErrCorrupt, formats.Limits{}},
		{"metadata-2047", func(b []byte) []byte {
			patchMeta(b, func(es []metaEntry) []metaEntry { return append(es, unknownItems(2047-len(es))...) })
			return b
		}, nil, formats.Limits{}},
		{"metadata-2047-large-items", func(b []byte) []byte {
			patchMeta(b, func(es []metaEntry) []metaEntry {
				more := unknownItems(2047 - len(es))
				for i := range more {
					more[i].Offset, more[i].Length = 64<<10, 1<<20-64<<10
				}
				return append(es, more...)
			})
			return b
		}, nil, formats.Limits{}},
		{"metadata-2048", func(b []byte) []byte {
			patchMeta(b, func(es []metaEntry) []metaEntry { return append(es, unknownItems(2048-len(es))...) })
			return b
		}, formats.ErrCorrupt, formats.Limits{}},
		{"metadata-bad-signature", func(b []byte) []byte { b[regionOf(b, regionMetadata)] = 'x'; return b }, formats.ErrCorrupt, formats.Limits{}},
		{"item-over-1MiB", func(b []byte) []byte {
			patchMeta(b, func(es []metaEntry) []metaEntry { es[0].Length = 1<<20 + 1; return es })
			return b
		}, formats.ErrLimit, formats.Limits{}},
		{"item-below-64KiB", func(b []byte) []byte {
			patchMeta(b, func(es []metaEntry) []metaEntry { es[0].Offset = 4096; return es })
			return b
		}, formats.ErrCorrupt, formats.Limits{}},
		{"item-outside-region", func(b []byte) []byte {
			patchMeta(b, func(es []metaEntry) []metaEntry { es[1].Offset = 1<<20 - 4; return es })
			return b
		}, formats.ErrCorrupt, formats.Limits{}},
		{"item-duplicate", func(b []byte) []byte {
			patchMeta(b, func(es []metaEntry) []metaEntry { return append(es, es[0]) })
			return b
		}, formats.ErrCorrupt, formats.Limits{}},
		{"required-item-missing", func(b []byte) []byte {
			patchMeta(b, func(es []metaEntry) []metaEntry { return es[1:] })
			return b
		}, formats.ErrCorrupt, formats.Limits{}},
		{"unknown-required-item", func(b []byte) []byte {
			patchMeta(b, func(es []metaEntry) []metaEntry {
				it := unknownItems(1)[0]
				it.Flags |= metaFlagRequired
				it.Required = true
				return append(es, it)
			})
			return b
		}, formats.ErrUnsupported, formats.Limits{}},
		{"block-size-0", setBlockSize(0), formats.ErrCorrupt, formats.Limits{}},
		{"block-size-512K", setBlockSize(512 << 10), formats.ErrCorrupt, formats.Limits{}},
		{"block-size-3M", setBlockSize(3 << 20), formats.ErrCorrupt, formats.Limits{}},
		{"block-size-257M", setBlockSize(257 << 20), formats.ErrCorrupt, formats.Limits{}},
		{"block-size-512M", setBlockSize(512 << 20), formats.ErrCorrupt, formats.Limits{}},
		{"logical-sector-1024", func(b []byte) []byte { le.PutUint32(metaItem(b, itemLogicalSect), 1024); return b }, formats.ErrCorrupt, formats.Limits{}},
		{"physical-sector-0", func(b []byte) []byte { le.PutUint32(metaItem(b, itemPhysicalSect), 0); return b }, formats.ErrCorrupt, formats.Limits{}},
		{"size-not-sector-multiple", setSize(8<<20 + 100), formats.ErrCorrupt, formats.Limits{}},
		{"size-64TiB", setSize(64 << 40), formats.ErrCorrupt, formats.Limits{}}, // the BAT no longer fits its region
		{"size-over-64TiB", setSize(64<<40 + 512), formats.ErrCorrupt, formats.Limits{}},
		{"size-2^63", setSize(1 << 63), formats.ErrCorrupt, formats.Limits{}},
		{"size-over-limit", setSize(16 << 20), formats.ErrLimit, formats.Limits{MaxVirtualSize: 8 << 20}},
		{"bat-over-limit-paged", nil, nil, formats.Limits{MaxTableBytes: 32, CacheBytes: 1}},
		{"has-parent-no-locator", func(b []byte) []byte {
			fp := metaItem(b, itemFileParams)
			le.PutUint32(fp[4:], fileParamHasParent)
			return b
		}, formats.ErrCorrupt, formats.Limits{}},
		{"bat-state-4", func(b []byte) []byte { setBAT(b, 0, batEntry(4, getBAT(b, 0))); return b }, formats.ErrCorrupt, formats.Limits{}},
		{"bat-partial-no-parent", func(b []byte) []byte { setBAT(b, 0, batEntry(payloadPartial, getBAT(b, 0))); return b }, formats.ErrCorrupt, formats.Limits{}},
		{"bat-past-eof", func(b []byte) []byte { setBAT(b, 0, batEntry(payloadFull, 1<<40)); return b }, formats.ErrCorrupt, formats.Limits{}},
		{"bat-huge-offset", func(b []byte) []byte { setBAT(b, 0, ^uint64(0)&^7|payloadFull); return b }, formats.ErrCorrupt, formats.Limits{}},
		{"bat-into-header", func(b []byte) []byte { setBAT(b, 0, batEntry(payloadFull, 0)); return b }, formats.ErrCorrupt, formats.Limits{}},
		{"bat-onto-bat", func(b []byte) []byte {
			setBAT(b, 0, batEntry(payloadFull, uint64(regionOf(b, regionBAT))))
			return b
		}, formats.ErrCorrupt, formats.Limits{}},
		{"bat-undefined-unmapped", func(b []byte) []byte {
			setBAT(b, 0, batEntry(payloadUndef, 0))
			setBAT(b, 1, batEntry(payloadUnmap, 0))
			setBAT(b, 2, batEntry(payloadUnmapQ, 0))
			return b
		}, nil, formats.Limits{}},
		{"empty-file", func(b []byte) []byte { return nil }, formats.ErrCorrupt, formats.Limits{}},
		{"truncated-512", func(b []byte) []byte { return b[:512] }, formats.ErrCorrupt, formats.Limits{}},
		{"truncated-header-section", func(b []byte) []byte { return b[:200<<10] }, formats.ErrCorrupt, formats.Limits{}},
		{"truncated-in-metadata", func(b []byte) []byte { return b[:regionOf(b, regionMetadata)+4096] }, formats.ErrCorrupt, formats.Limits{}},
		{"truncated-in-bat", func(b []byte) []byte { return b[:regionOf(b, regionBAT)+8] }, formats.ErrCorrupt, formats.Limits{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := append([]byte(nil), base...)
			if c.mutate != nil {
				b = c.mutate(b)
			}
			img, err := openBytes(b, formats.OpenOptions{Limits: c.limits})
			if c.kind == nil {
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				readAll(t, img)
				if _, err := img.Extents(0, img.Size()); err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, c.kind) {
				t.Fatalf("got %v, want %v", err, c.kind)
			}
			if !strings.Contains(err.Error(), "crafted.vhdx") {
				t.Errorf("error does not name the file: %v", err)
			}
		})
	}
}

func unknownRegions(n int) []region {
	rs := make([]region, n)
	for i := range rs {
		rs[i].GUID[0], rs[i].GUID[1], rs[i].GUID[15] = byte(i), byte(i>>8), 0xEE
	}
	return rs
}

func unknownItems(n int) []metaEntry {
	es := make([]metaEntry, n)
	for i := range es {
		es[i].GUID[0], es[i].GUID[1], es[i].GUID[15] = byte(i), byte(i>>8), 0xEE
	}
	return es
}

func setBlockSize(bs uint32) func([]byte) []byte {
	return func(b []byte) []byte { binary.LittleEndian.PutUint32(metaItem(b, itemFileParams), bs); return b }
}

func setSize(size uint64) func([]byte) []byte {
	return func(b []byte) []byte { binary.LittleEndian.PutUint64(metaItem(b, itemVirtualSize), size); return b }
}

// TestHostileMemory: a 64 TiB virtual disk with 1 MiB blocks has a
// 512 MiB BAT, over the default table limit: it opens with the BAT read in
// pages through a bounded cache, without ever loading it whole.
func TestHostileMemory(t *testing.T) {
	b := hostileBase(t)
	setSize(64 << 40)(b)
	setBAT(b, 0, 0) // the grown BAT region covers the old blocks
	setBAT(b, 3, 0)
	patchRegions(b, func(rs []region) []region {
		for i := range rs {
			if rs[i].GUID == regionBAT {
				rs[i].Length = 1<<32 - 1<<20
			}
		}
		return rs
	})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f := &bigFile{data: b, size: 8 << 30}
	img, err := Open(context.Background(), f, formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img.pages == nil {
		t.Fatal("the BAT was loaded whole")
	}
	buf := make([]byte, 1<<20)
	for _, off := range []int64{0, 3 << 20, 40 << 40, 64<<40 - 1<<20} {
		if _, err := img.ReadAt(buf, off); err != nil {
			t.Fatalf("read at %d: %v", off, err)
		}
	}
	if _, err := img.Extents(60<<40, 4<<30); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Errorf("allocated %d bytes", grew)
	}
}

// TestPagedBAT: with a table limit below the BAT's size the BAT is paged;
// reads and extents equal the whole-table ones, and a bad entry fails
// only the reads that need its page, and check.
func TestPagedBAT(t *testing.T) {
	const size = 8200 << 20 // 8200 blocks (8202 entries): the BAT spans two pages
	base := memImage(t, size, "block_size=1M", map[int64][]byte{0: filled(4096, 1), 8195 << 20: filled(8192, 2), 2 << 30: filled(3<<20, 3)})
	whole, err := openBytes(base, formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	paged, err := openBytes(base, formats.OpenOptions{Limits: formats.Limits{MaxTableBytes: 32 << 10, CacheBytes: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if paged.pages == nil || whole.pages != nil {
		t.Fatal("paging not as expected")
	}
	for _, r := range [][2]int64{{0, 8 << 20}, {2<<30 - 4096, 4 << 20}, {8194 << 20, 5 << 20}} {
		a, b := make([]byte, r[1]), make([]byte, r[1])
		whole.ReadAt(a, r[0])
		if _, err := paged.ReadAt(b, r[0]); err != nil || !bytes.Equal(a, b) {
			t.Fatalf("paged read at %d differs (%v)", r[0], err)
		}
	}
	ea, _ := whole.Extents(0, size)
	eb, err := paged.Extents(0, size)
	if diff := cmp.Diff(ea, eb); err != nil || diff != "" {
		t.Fatalf("extents differ (%v):\n%s", err, diff)
	}
	bad := append([]byte(nil), base...)
	setBAT(bad, 8199, batEntry(4, 0)) // on the second page
	img, err := openBytes(bad, formats.OpenOptions{Limits: formats.Limits{MaxTableBytes: 32 << 10}})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if _, err := img.ReadAt(make([]byte, 4096), 0); err != nil {
		t.Errorf("read on the good page: %v", err)
	}
	if _, err := img.ReadAt(make([]byte, 4096), 8195<<20); !errors.Is(err, formats.ErrCorrupt) {
		t.Errorf("read on the bad page: %v", err)
	}
	rep, err := img.Check(context.Background(), formats.CheckOptions{})
	if err != nil || rep.CheckErrors == 0 {
		t.Errorf("check: %+v %v", rep, err)
	}
}

// bigFile is a sparse in-memory file: data, then zeros up to size.
type bigFile struct {
	data []byte
	size int64
}

func (f *bigFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= f.size {
		return 0, errEOF
	}
	n := int(min(int64(len(p)), f.size-off))
	clear(p[:n])
	if off < int64(len(f.data)) {
		copy(p[:n], f.data[off:])
	}
	if n < len(p) {
		return n, errEOF
	}
	return n, nil
}
func (f *bigFile) WriteAt(p []byte, off int64) (int, error) { return 0, formats.ErrReadOnly }
func (f *bigFile) Size() (int64, error)                     { return f.size, nil }
func (f *bigFile) Truncate(int64) error                     { return formats.ErrReadOnly }
func (f *bigFile) Sync() error                              { return nil }
func (f *bigFile) Close() error                             { return nil }
func (f *bigFile) Name() string                             { return "crafted.vhdx" }

// TestCheckFindsBadBlocks: overlapping blocks and a block cut by the end of
// the file are corruptions for check, not refusals to open.
func TestCheckFindsBadBlocks(t *testing.T) {
	b := hostileBase(t)
	setBAT(b, 5, getBAT(b, 0)) // block 5 shares block 0's space
	img, err := openBytes(b[:len(b)-4096], formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := img.Check(context.Background(), formats.CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Corruptions != 2 {
		t.Errorf("corruptions %d, want 2 (overlap, truncated block): %q", rep.Corruptions, rep.Messages)
	}
}

// TestParentReferences: the safe policy refuses absolute and escaping
// parent paths naming the flag; a wrong linkage is corrupt.
func TestParentReferences(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	basePath := filepath.Join(dir, "base.vhdx")
	w := create(t, basePath, 4<<20, "")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	copyFile(t, basePath, filepath.Join(sub, "base.vhdx"))
	childPath := filepath.Join(sub, "child.vhdx")
	o, _ := formats.ParseOptions(createOptions, "backing_file=base.vhdx")
	f, _ := os.Create(childPath)
	c, err := Create(context.Background(), formats.CreateRequest{File: formats.NewOSFile(f), Name: childPath, Options: o})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	child, _ := os.ReadFile(childPath)

	n := 0
	withLocator := func(keys ...string) string {
		b := append([]byte(nil), child...)
		img, err := openBytes(b, formats.OpenOptions{NoBacking: true})
		if err != nil {
			t.Fatal(err)
		}
		pl := parentLocator{Values: map[string]string{}}
		for i := 0; i < len(keys); i += 2 {
			pl.Keys = append(pl.Keys, keys[i])
			pl.Values[keys[i]] = keys[i+1]
		}
		loc := metaItem(b, itemParentLoc)
		enc := pl.encode()
		if len(enc) > len(loc) {
			// Grow the item: it is the last one, with room after it.
			patchMeta(b, func(es []metaEntry) []metaEntry { es[len(es)-1].Length = uint32(len(enc)); return es })
			loc = metaItem(b, itemParentLoc)
		}
		clear(loc)
		copy(loc, enc)
		_ = img
		n++
		p := filepath.Join(sub, fmt.Sprintf("c%d.vhdx", n))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	linkage := func() string {
		img, err := formats.Open(context.Background(), childPath, formats.OpenOptions{NoBacking: true})
		if err != nil {
			t.Fatal(err)
		}
		defer img.Close()
		return img.(*Image).locator.Values["parent_linkage"]
	}()

	cases := []struct {
		name string
		path string
		pol  formats.ReferencePolicy
		kind error
		flag bool
	}{
		{"relative", withLocator("parent_linkage", linkage, "relative_path", `.\base.vhdx`), formats.PolicySafe, nil, false},
		{"dotdot", withLocator("parent_linkage", linkage, "relative_path", `..\base.vhdx`), formats.PolicySafe, formats.ErrReferenceDenied, true},
		{"dotdot-any", withLocator("parent_linkage", linkage, "relative_path", `..\base.vhdx`), formats.PolicyAny, nil, false},
		{"absolute", withLocator("parent_linkage", linkage, "absolute_win32_path", `\\?\C:`+strings.ReplaceAll(basePath, "/", `\`)), formats.PolicySafe, formats.ErrReferenceDenied, true},
		{"absolute-any", withLocator("parent_linkage", linkage, "absolute_win32_path", `C:`+strings.ReplaceAll(basePath, "/", `\`)), formats.PolicyAny, nil, false},
		{"strict", withLocator("parent_linkage", linkage, "relative_path", `base.vhdx`), formats.PolicyStrict, formats.ErrReferenceDenied, false},
		{"wrong-linkage", withLocator("parent_linkage", "{00000000-1111-2222-3333-444444444444}", "relative_path", `base.vhdx`), formats.PolicySafe, formats.ErrCorrupt, false},
		{"bad-linkage", withLocator("parent_linkage", "nonsense", "relative_path", `base.vhdx`), formats.PolicySafe, formats.ErrCorrupt, false},
		{"no-path", withLocator("parent_linkage", linkage), formats.PolicySafe, formats.ErrCorrupt, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img, err := formats.Open(context.Background(), c.path, formats.OpenOptions{Resolver: &formats.DirResolver{Policy: c.pol}})
			if c.kind == nil {
				if err != nil {
					t.Fatal(err)
				}
				img.Close()
				return
			}
			if !errors.Is(err, c.kind) {
				t.Fatalf("got %v, want %v", err, c.kind)
			}
			if c.flag && !strings.Contains(err.Error(), "--references=any") {
				t.Errorf("error does not name the flag: %v", err)
			}
		})
	}
	// Every locator tried is named, with the policy: a relative path to a
	// missing file, then an absolute one that safe refuses and local allows.
	both := withLocator("parent_linkage", linkage, "relative_path", `missing.vhdx`,
		"absolute_win32_path", `C:`+strings.ReplaceAll(basePath, "/", `\`))
	_, err = formats.Open(context.Background(), both, formats.OpenOptions{Resolver: &formats.DirResolver{Policy: formats.PolicySafe}})
	for _, want := range []string{`relative_path "missing.vhdx"`, `absolute_win32_path "` + basePath + `"`,
		"under the safe reference policy", "--references=local"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parent error %v does not say %q", err, want)
		}
	}
	if err != nil && (strings.Contains(err.Error(), "\n") || !errors.Is(err, formats.ErrReferenceDenied)) {
		t.Errorf("parent error is not one ErrReferenceDenied line: %v", err)
	}
	if _, err := formats.Open(context.Background(), both, formats.OpenOptions{Resolver: &formats.DirResolver{Policy: formats.PolicyLocal}}); err != nil {
		t.Errorf("under local the absolute locator opens the parent: %v", err)
	}
}

// TestBitmapSlots: in a disk with more payload blocks than the chunk ratio,
// the entry after each chunk is a sector-bitmap entry: only states 0 and 6
// are valid there, and payload indexing skips it.
func TestBitmapSlots(t *testing.T) {
	const size = 4<<30 + 2<<20 // 4098 blocks of 1 MiB: chunk 0 holds 4096
	base := memImage(t, size, "block_size=1M", map[int64][]byte{4097 << 20: filled(512, 9)})
	img, err := openBytes(base, formats.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img.chunkRatio != 4096 || len(img.bat) != 4099 || batState(img.bat[4098]) != payloadFull {
		t.Fatalf("chunk ratio %d, %d entries, block 4097 entry %#x", img.chunkRatio, len(img.bat), img.bat[4098])
	}
	buf := make([]byte, 512)
	if _, err := img.ReadAt(buf, 4097<<20); err != nil || buf[0] != 9 {
		t.Fatalf("read through the interleaved BAT: %v %v", err, buf[:4])
	}
	bad := append([]byte(nil), base...)
	setBAT(bad, 4096, batEntry(payloadZero, 0))
	if _, err := openBytes(bad, formats.OpenOptions{}); !errors.Is(err, formats.ErrCorrupt) {
		t.Errorf("bitmap slot with state 2: %v", err)
	}
	bad = append([]byte(nil), base...)
	setBAT(bad, 4096, batEntry(bitmapPresent, 1<<40))
	if _, err := openBytes(bad, formats.OpenOptions{}); !errors.Is(err, formats.ErrCorrupt) {
		t.Errorf("bitmap block past the end of the file: %v", err)
	}
}

// TestParentLoop: a disk naming itself as its parent (with matching
// linkage) stops at the chain depth limit.
func TestParentLoop(t *testing.T) {
	dir := t.TempDir()
	basePath := filepath.Join(dir, "base.vhdx")
	w := create(t, basePath, 4<<20, "")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	loopPath := filepath.Join(dir, "loop.vhdx")
	o, _ := formats.ParseOptions(createOptions, "backing_file=base.vhdx")
	f, _ := os.Create(loopPath)
	c, err := Create(context.Background(), formats.CreateRequest{File: formats.NewOSFile(f), Name: loopPath, Options: o})
	if err != nil {
		t.Fatal(err)
	}
	own := c.hdr.DataWriteGUID
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(loopPath)
	pl := parentLocator{Keys: []string{"parent_linkage", "relative_path"}, Values: map[string]string{
		"parent_linkage": "{" + own.String() + "}", "relative_path": "loop.vhdx"}}
	loc := metaItem(b, itemParentLoc)
	enc := pl.encode()
	if len(enc) > len(loc) {
		t.Fatalf("locator grew: %d > %d", len(enc), len(loc))
	}
	clear(loc)
	copy(loc, enc)
	if err := os.WriteFile(loopPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = formats.Open(context.Background(), loopPath, formats.OpenOptions{Limits: formats.Limits{MaxChainDepth: 8}})
	if !errors.Is(err, formats.ErrBackingLoop) || !strings.Contains(err.Error(), loopPath+" -> "+loopPath) {
		t.Fatalf("got %v, want a backing loop error", err)
	}
}
