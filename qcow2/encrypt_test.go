package qcow2

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

const encSecret = "secret,id=sec0,data=qcow2-Passphrase"

var encPass = []byte("qcow2-Passphrase")

// encPattern is 3 MiB of test content: random data, a zero run, text.
func encPattern() []byte {
	b := make([]byte, 3*mib)
	rand.Read(b[:mib+4096+17])
	copy(b[2*mib:], bytes.Repeat([]byte("encrypted qcow2 "), mib/16))
	return b
}

func createEncrypted(t *testing.T, path string, size int64, opts string) *Image {
	t.Helper()
	o, err := formats.ParseOptions(createOptions, opts)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := Create(context.Background(), formats.CreateRequest{File: formats.NewOSFile(f), Name: path, Size: size, Options: o,
		Open: formats.OpenOptions{Secrets: map[string][]byte{"sec0": encPass}}})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func qemuImageOpts(path string) string {
	return "driver=qcow2,file.filename=" + path + ",encrypt.key-secret=sec0"
}

var encOptionSets = []string{
	"encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10",
	"encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10,compat=0.10,encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=essiv,encrypt.hash-alg=sha512,cluster_size=4096",
}

// TestEncryptedVdiskReadsQemu: vdisk reads qemu-img's LUKS-encrypted qcow2
// images (ciphers, modes, IV generators and hashes) as the plain source.
// (qemu 7.2 aborts on its own ctr-mode and aes-192 images, so those are
// not among them.)
func TestEncryptedVdiskReadsQemu(t *testing.T) {
	want := encPattern()
	src := filepath.Join(t.TempDir(), "src.raw")
	os.WriteFile(src, want, 0o644)
	for _, opts := range encOptionSets {
		path := filepath.Join(t.TempDir(), "q.qcow2")
		qemuEncrypt(t, "convert", "--object", encSecret, "-O", "qcow2", "-o", opts, src, path)
		img := openPath(t, path, formats.OpenOptions{Key: encPass})
		if got := readAll(t, img); !bytes.Equal(got, want) {
			t.Fatalf("%s: vdisk reads other bytes than qemu wrote (first difference at %d)", opts, firstDiff(got, want))
		}
	}
}

// TestEncryptedQemuReadsVdisk: qemu-img opens vdisk's encrypted images with
// the same secret, reads the bytes vdisk wrote (full, partial and
// unaligned writes, rewrites and zeroed ranges) and finds no errors.
func TestEncryptedQemuReadsVdisk(t *testing.T) {
	for _, opts := range encOptionSets {
		path := filepath.Join(t.TempDir(), "v.qcow2")
		img := createEncrypted(t, path, 3*mib, opts)
		want := encPattern()
		mustWrite(t, img, want, 0)
		for _, w := range []struct {
			off int64
			n   int
		}{{100, 7}, {65536 - 3, 9}, {mib + 511, 1026}, {2*mib + 4096, 65536}} {
			p := bytes.Repeat([]byte{byte(w.off)}, w.n)
			mustWrite(t, img, p, w.off)
			copy(want[w.off:], p)
		}
		if err := img.WriteZeroes(mib, mib/2); err != nil {
			t.Fatal(err)
		}
		clear(want[mib : mib+mib/2])
		if err := img.Close(); err != nil {
			t.Fatal(err)
		}
		plain := filepath.Join(t.TempDir(), "want.raw")
		os.WriteFile(plain, want, 0o644)
		if r := qemutest.Exec(t, "qemu-img", "compare", "--object", encSecret, "--image-opts", qemuImageOpts(path),
			"driver=raw,file.filename="+plain); r.Code != 0 {
			t.Fatalf("%s: qemu-img compare: %s%s", opts, r.Stdout, r.Stderr)
		}
		if r := qemutest.Exec(t, "qemu-img", "check", "--object", encSecret, "--image-opts", qemuImageOpts(path)); r.Code != 0 {
			t.Fatalf("%s: qemu-img check: %s%s", opts, r.Stdout, r.Stderr)
		}
		// Reopened by vdisk, writable: the same content, and vdisk's check agrees.
		re := openPath(t, path, formats.OpenOptions{Key: encPass, Writable: true})
		if got := readAll(t, re); !bytes.Equal(got, want) {
			t.Fatalf("%s: vdisk rereads other bytes", opts)
		}
		rep, err := re.(formats.Checker).Check(t.Context(), formats.CheckOptions{})
		if err != nil || rep.Corruptions+rep.Leaks+rep.CheckErrors != 0 {
			t.Fatalf("%s: vdisk check: %+v %v", opts, rep, err)
		}
	}
}

func mustWrite(t *testing.T, img formats.Writable, p []byte, off int64) {
	t.Helper()
	if _, err := img.WriteAt(p, off); err != nil {
		t.Fatal(err)
	}
}

// TestEncryptedQemuWritesIntoVdisk: qemu-io writes into an image vdisk
// created; vdisk reads qemu's bytes.
func TestEncryptedQemuWritesIntoVdisk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.qcow2")
	img := createEncrypted(t, path, 2*mib, encOptionSets[0])
	img.Close()
	qemutest.Img(t, "convert", "--object", encSecret, "-n", "-f", "raw", "--target-image-opts",
		writeTemp(t, bytes.Repeat([]byte("qemu wrote this "), 2*mib/16)), qemuImageOpts(path))
	got := readAll(t, openPath(t, path, formats.OpenOptions{Key: encPass}))
	if !bytes.Equal(got, bytes.Repeat([]byte("qemu wrote this "), 2*mib/16)) {
		t.Fatal("vdisk reads other bytes than qemu wrote")
	}
}

// qemuEncrypt runs a qemu-img command that creates an encrypted image,
// again when qemu's PBKDF calibration fails on a busy machine ("Unable to
// get accurate CPU usage").
func qemuEncrypt(t *testing.T, args ...string) {
	t.Helper()
	for try := 0; ; try++ {
		r := qemutest.Exec(t, "qemu-img", args...)
		if r.Code == 0 {
			return
		}
		if try == 3 || !strings.Contains(r.Stderr, "accurate CPU usage") {
			t.Fatalf("qemu-img %v: %s%s", args, r.Stdout, r.Stderr)
		}
	}
}

func writeTemp(t *testing.T, b []byte) string {
	p := filepath.Join(t.TempDir(), "data.raw")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestEncryptedWrongKey: a wrong key names the image and the slots
// tried, not the key; nothing is written; a missing key is its own error;
// info-style opens work without one.
func TestEncryptedWrongKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.qcow2")
	img := createEncrypted(t, path, mib, encOptionSets[0])
	mustWrite(t, img, []byte("data"), 0)
	img.Close()
	sum := func() [32]byte { b, _ := os.ReadFile(path); return sha256.Sum256(b) }
	before := sum()
	wrong := []byte("Not-The-Passphrase")
	_, err := formats.Open(context.Background(), path, formats.OpenOptions{Key: wrong, Writable: true})
	if !errors.Is(err, formats.ErrBadKey) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "(1 tried)") {
		t.Fatalf("wrong key: %v", err)
	}
	if strings.Contains(err.Error(), string(wrong)) || strings.Contains(err.Error(), string(encPass)) {
		t.Fatalf("the error shows a key: %v", err)
	}
	if _, err := formats.Open(context.Background(), path, formats.OpenOptions{Writable: true}); !errors.Is(err, formats.ErrKeyRequired) {
		t.Fatalf("no key: %v", err)
	}
	meta := openPath(t, path, formats.OpenOptions{MetadataOnly: true})
	if _, err := meta.ReadAt(make([]byte, 4), 0); !errors.Is(err, formats.ErrKeyRequired) {
		t.Fatalf("read without key: %v", err)
	}
	if !meta.(formats.Informer).Info().Encrypted {
		t.Fatal("info does not say encrypted")
	}
	if sum() != before {
		t.Fatal("failed opens changed the file")
	}
}

// TestEncryptedCompressionRefused: like qemu, no compressed clusters in an
// encrypted image.
func TestEncryptedCompressionRefused(t *testing.T) {
	img := createEncrypted(t, filepath.Join(t.TempDir(), "c.qcow2"), mib, encOptionSets[0])
	defer img.Close()
	if _, _, err := img.Compress(nil, make([]byte, 65536)); err == nil || !strings.Contains(err.Error(), "Compression and encryption not supported at the same time") {
		t.Fatalf("Compress: %v", err)
	}
	if err := img.WriteCompressed(0, []byte{1, 2, 3}); err == nil {
		t.Fatal("WriteCompressed into an encrypted image succeeded")
	}
	src := writeTemp(t, make([]byte, 65536))
	r := qemutest.Exec(t, "qemu-img", "convert", "-c", "--object", encSecret, "-O", "qcow2", "-o", encOptionSets[0], src, filepath.Join(t.TempDir(), "q.qcow2"))
	if r.Code == 0 || !strings.Contains(r.Stderr, "Compression and encryption not supported at the same time") {
		t.Fatalf("qemu-img accepts -c with encryption now: %d %s", r.Code, r.Stderr)
	}
}

// TestLegacyAESReadOnly: qemu's legacy AES images read as qemu wrote them;
// writing and creating them is refused with the reason.
func TestLegacyAESReadOnly(t *testing.T) {
	want := encPattern()
	path := filepath.Join(t.TempDir(), "aes.qcow2")
	qemuEncrypt(t, "convert", "--object", encSecret, "-O", "qcow2", "-o", "encrypt.format=aes,encrypt.key-secret=sec0", writeTemp(t, want), path)
	img := openPath(t, path, formats.OpenOptions{Key: encPass})
	if got := readAll(t, img); !bytes.Equal(got, want) {
		t.Fatalf("AES: vdisk reads other bytes than qemu wrote (first difference at %d)", firstDiff(got, want))
	}
	if _, err := formats.Open(context.Background(), path, formats.OpenOptions{Key: encPass, Writable: true}); !errors.Is(err, formats.ErrReadOnly) || !strings.Contains(err.Error(), "insecure") {
		t.Fatalf("writable AES open: %v", err)
	}
	o, _ := formats.ParseOptions(createOptions, "encrypt.format=aes,encrypt.key-secret=sec0")
	f, _ := os.Create(filepath.Join(t.TempDir(), "new.qcow2"))
	defer f.Close()
	if _, err := Create(context.Background(), formats.CreateRequest{File: formats.NewOSFile(f), Name: "new.qcow2", Size: mib, Options: o,
		Open: formats.OpenOptions{Secrets: map[string][]byte{"sec0": encPass}}}); !errors.Is(err, formats.ErrUnsupported) {
		t.Fatalf("creating AES: %v", err)
	}
}

// TestEncryptedOverlay: an encrypted overlay of a plain backing file, with
// partial writes (copy-on-write of the backing bytes, encrypted) and an
// extended-L2 layout, reads in qemu as vdisk wrote it.
func TestEncryptedOverlay(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "base.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", base, "2M")
	qemutest.IO(t, "qcow2", base, "write -P 0x33 0 2M")
	want := bytes.Repeat([]byte{0x33}, 2*mib)
	for _, opts := range []string{"", ",extended_l2=on,cluster_size=128k"} {
		path := filepath.Join(dir, "top.qcow2")
		img := createEncrypted(t, path, 0, encOptionSets[0]+",backing_file=base.qcow2,backing_fmt=qcow2"+opts)
		w := append([]byte(nil), want...)
		for _, off := range []int64{1000, 65536 + 4096, 300000} {
			p := bytes.Repeat([]byte{byte(off)}, 5000)
			mustWrite(t, img, p, off)
			copy(w[off:], p)
		}
		if err := img.Close(); err != nil {
			t.Fatal(err)
		}
		if r := qemutest.Exec(t, "qemu-img", "compare", "--object", encSecret, "--image-opts", qemuImageOpts(path),
			"driver=raw,file.filename="+writeTemp(t, w)); r.Code != 0 {
			t.Fatalf("%q: qemu-img compare: %s%s", opts, r.Stdout, r.Stderr)
		}
		os.Remove(path)
	}
}
