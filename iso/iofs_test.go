package iso

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
)

// TestFSConformance runs testing/fstest.TestFS on images xorriso made
// (Rock Ridge, Joliet, plain ISO 9660), and compares every regular file
// read through io/fs with the source tree.
func TestFSConformance(t *testing.T) {
	tree := makeTree(t)
	for _, v := range xorrisoVariants {
		if v.joliet != v.rr {
			continue // the two others: plain ISO 9660 names, and both extensions
		}
		t.Run(v.name, func(t *testing.T) {
			fsys := openFS(t, xorrisoISO(t, tree, append([]string{"-V", "CIDATA"}, v.args...)...))
			want := []string{"EMPTY", "EMPTYDIR", "SUB/DEEPER/BIG.BIN", "A/B/C/D/E/F/G/H/I/DEEP.TXT"}
			if v.rr {
				want = []string{"empty", "emptydir", "sub/deeper/big.bin", "a/b/c/d/e/f/g/h/i/deep.txt",
					"user-data", "sub/link", "sub/deeper/ünïcødé.txt"}
			}
			if err := fstest.TestFS(fsys, want...); err != nil {
				t.Fatal(err)
			}
			if !v.rr {
				return // ISO 9660 names are not the tree's
			}
			err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
				if err != nil || !d.Type().IsRegular() {
					return err
				}
				got, err := fs.ReadFile(fsys, p)
				if err != nil {
					return err
				}
				src, err := os.ReadFile(filepath.Join(tree, filepath.FromSlash(p)))
				if err != nil {
					return err
				}
				if !bytes.Equal(got, src) {
					t.Errorf("%s: %d bytes read differ from the %d-byte source", p, len(got), len(src))
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if target, err := fsys.ReadLink("sub/link"); err != nil || target != "../README.TXT" {
				t.Errorf("ReadLink(sub/link) = %q, %v", target, err)
			}
		})
	}
}

// TestFSLinkLoop: a symbolic link loop in a crafted tree ends with an
// error, never a hang.
func TestFSLinkLoop(t *testing.T) {
	dir := t.TempDir()
	for _, l := range [][2]string{{"b", "a"}, {"a", "b"}, {"self", "self"}} {
		if err := os.Symlink(l[0], filepath.Join(dir, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	fsys := openFS(t, xorrisoISO(t, dir, "-R"))
	for _, name := range []string{"a", "self", "a/x"} {
		if _, err := fsys.Open(name); err == nil {
			t.Errorf("Open(%q) through a link loop succeeded", name)
		}
	}
	if _, err := fsys.Lstat("a"); err != nil {
		t.Errorf("Lstat(a): %v", err)
	}
	if _, err := fsys.Open("/a"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("Open(/a) = %v, want fs.ErrInvalid", err)
	}
}

// TestCreateFromFS builds an image from an fstest.MapFS (no directory on
// disk) and has xorriso extract it: the files, modes and the symbolic link
// come back as the FS holds them.
func TestCreateFromFS(t *testing.T) {
	src := fstest.MapFS{
		"user-data":          {Data: []byte("#cloud-config\n"), Mode: 0o644},
		"meta-data":          {Data: []byte("instance-id: fs\n"), Mode: 0o600},
		"scripts/run.sh":     {Data: []byte("#!/bin/sh\necho hi\n"), Mode: 0o755},
		"scripts/empty":      {Mode: 0o644},
		"scripts/link-to-ud": {Data: []byte("../user-data"), Mode: fs.ModeSymlink | 0o777},
	}
	out := filepath.Join(t.TempDir(), "fs.iso")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := Create(context.Background(), f, src, CreateOptions{VolumeID: "CIDATA", RockRidge: true, Joliet: true}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	dest := filepath.Join(t.TempDir(), "x")
	run(t, "xorriso", "-osirrox", "on", "-indev", out, "-extract", "/", dest)
	for name, mf := range src {
		p := filepath.Join(dest, filepath.FromSlash(name))
		st, err := os.Lstat(p)
		if err != nil {
			t.Errorf("xorriso did not extract %s: %v", name, err)
			continue
		}
		if mf.Mode&fs.ModeSymlink != 0 {
			if target, err := os.Readlink(p); err != nil || target != string(mf.Data) {
				t.Errorf("%s: link to %q, %v; want %q", name, target, err, mf.Data)
			}
			continue
		}
		got, _ := os.ReadFile(p)
		if !bytes.Equal(got, mf.Data) || st.Mode().Perm() != mf.Mode.Perm() {
			t.Errorf("%s: %q mode %v; want %q mode %v", name, got, st.Mode().Perm(), mf.Data, mf.Mode.Perm())
		}
	}
	// The image's own FS is a source too: a copy of it has the same files.
	copyOut := filepath.Join(t.TempDir(), "copy.iso")
	g, err := os.Create(copyOut)
	if err != nil {
		t.Fatal(err)
	}
	if err := Create(context.Background(), g, openFS(t, out), CreateOptions{RockRidge: true}); err != nil {
		t.Fatal(err)
	}
	g.Close()
	if err := fstest.TestFS(openFS(t, copyOut), "user-data", "scripts/run.sh", "scripts/link-to-ud"); err != nil {
		t.Error(err)
	}
}

// TestCancel: a cancelled context stops CreateFile and Extract, which leave
// nothing behind.
func TestCancel(t *testing.T) {
	tree := makeTree(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := filepath.Join(t.TempDir(), "c.iso")
	if err := CreateFile(ctx, out, tree, CreateOptions{RockRidge: true}); !errors.Is(err, context.Canceled) {
		t.Fatalf("CreateFile with a cancelled context: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 0 {
		t.Errorf("cancelled CreateFile left %v", ents)
	}
	if err := CreateFile(context.Background(), out, tree, CreateOptions{RockRidge: true}); err != nil {
		t.Fatal(err)
	}
	dest := t.TempDir()
	if err := openFS(t, out).Extract(ctx, "/sub/deeper/big.bin", dest); !errors.Is(err, context.Canceled) {
		t.Fatalf("Extract with a cancelled context: %v", err)
	}
	if ents, _ := os.ReadDir(dest); len(ents) != 0 {
		t.Errorf("cancelled Extract left %v", ents)
	}
}
