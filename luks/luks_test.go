package luks

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
	_ "github.com/vdiskio/vdisk/raw"
)

const secretArg = "secret,id=sec0,data=s3cr3t-Pass"

var pass = []byte("s3cr3t-Pass")

// pattern is test content: random runs, zeros and text.
func pattern(size int) []byte {
	b := make([]byte, size)
	rand.Read(b[:size/3])
	copy(b[size/2:], bytes.Repeat([]byte("vdisk luks "), size/22))
	return b
}

func writeFile(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func readAll(t *testing.T, img formats.Image) []byte {
	t.Helper()
	b := make([]byte, img.Size())
	if _, err := img.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

func create(t *testing.T, path string, size int64, opts string) *Image {
	t.Helper()
	o, err := formats.ParseOptions(lukshdrOptions(), opts)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := Create(context.Background(), formats.CreateRequest{File: formats.NewOSFile(f), Name: path, Size: size, Options: o,
		Open: formats.OpenOptions{Secrets: map[string][]byte{"sec0": pass}}})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func lukshdrOptions() []formats.OptionSpec {
	d, _ := formats.Lookup(Name)
	return d.CreateOptions
}

// TestQemuReadsVdisk: qemu-img's luks driver reads what vdisk writes,
// byte for byte, with the same secret (unaligned writes included), and
// cryptsetup accepts the header and the passphrase.
func TestQemuReadsVdisk(t *testing.T) {
	for _, opts := range []string{"key-secret=sec0,iter-time=10",
		"key-secret=sec0,iter-time=10,cipher-alg=aes-128,cipher-mode=cbc,ivgen-alg=essiv,hash-alg=sha1"} {
		path := filepath.Join(t.TempDir(), "v.luks")
		img := create(t, path, 4<<20, opts)
		want := pattern(4 << 20)
		if _, err := img.WriteAt(want, 0); err != nil {
			t.Fatal(err)
		}
		patch := []byte("an unaligned write across a sector boundary")
		if _, err := img.WriteAt(patch, 1000); err != nil {
			t.Fatal(err)
		}
		copy(want[1000:], patch)
		img.Close()
		plain := writeFile(t, "want.raw", want)
		if r := qemutest.Exec(t, "qemu-img", "compare", "--object", secretArg, "--image-opts",
			"driver=luks,file.filename="+path+",key-secret=sec0", "driver=raw,file.filename="+plain); r.Code != 0 {
			t.Fatalf("%s: qemu-img compare: %s%s", opts, r.Stdout, r.Stderr)
		}
		if r := qemutest.Exec(t, "cryptsetup", "luksDump", path); r.Code != 0 || !strings.Contains(r.Stdout, "Key Slot 0: ENABLED") {
			t.Fatalf("luksDump: %s%s", r.Stdout, r.Stderr)
		}
	}
}

// TestVdiskReadsQemu: vdisk reads what qemu-img writes into a luks image.
func TestVdiskReadsQemu(t *testing.T) {
	want := pattern(3 << 20)
	plain := writeFile(t, "src.raw", want)
	out := filepath.Join(t.TempDir(), "q.luks")
	qemutest.Img(t, "convert", "--object", secretArg, "-O", "luks", "-o", "key-secret=sec0,iter-time=10", plain, out)
	img, err := formats.Open(context.Background(), out, formats.OpenOptions{Key: pass})
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	if img.Format() != Name || img.Size() != int64(len(want)) {
		t.Fatalf("format %s size %d", img.Format(), img.Size())
	}
	if !bytes.Equal(readAll(t, img), want) {
		t.Fatal("vdisk reads other bytes than qemu wrote")
	}
}

// TestCryptsetupLUKS1Payload: a volume cryptsetup formats, filled by
// qemu-img, reads the same in vdisk.
func TestCryptsetupLUKS1Payload(t *testing.T) {
	for _, cipher := range []string{"aes-xts-plain64", "aes-cbc-essiv:sha256"} {
		path := filepath.Join(t.TempDir(), "c.luks")
		os.WriteFile(path, nil, 0o644)
		os.Truncate(path, 6<<20)
		kf := writeFile(t, "key", pass)
		qemutest.Exec(t, "cryptsetup", "--version")
		if r := qemutest.Exec(t, "cryptsetup", "luksFormat", "-q", "--batch-mode", "--type", "luks1", "--cipher", cipher,
			"--pbkdf-force-iterations", "1000", "--key-file", kf, path); r.Code != 0 {
			t.Fatalf("luksFormat: %s", r.Stderr)
		}
		img, err := formats.Open(context.Background(), path, formats.OpenOptions{Key: pass})
		if err != nil {
			t.Fatal(err)
		}
		size := img.Size()
		img.Close()
		want := pattern(int(size))
		plain := writeFile(t, "src.raw", want)
		qemutest.Img(t, "convert", "--object", secretArg, "-n", "-f", "raw", "--target-image-opts", plain,
			"driver=luks,file.filename="+path+",key-secret=sec0")
		img, err = formats.Open(context.Background(), path, formats.OpenOptions{Key: pass})
		if err != nil {
			t.Fatal(err)
		}
		got := readAll(t, img)
		img.Close()
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: vdisk reads other bytes than qemu wrote into cryptsetup's volume", cipher)
		}
	}
}

// TestCryptsetupLUKS2Payload: cryptsetup encrypts a file in place as
// LUKS2 (offline reencryption); vdisk decrypts the original bytes, and the
// ciphertext vdisk writes for the same bytes is cryptsetup's, sector for
// sector (512- and 4096-byte sectors).
func TestCryptsetupLUKS2Payload(t *testing.T) {
	for _, sector := range []string{"512", "4096"} {
		orig := pattern(12 << 20)
		path := writeFile(t, "l2.img", orig)
		kf := writeFile(t, "key", pass)
		if r := qemutest.Exec(t, "cryptsetup", "reencrypt", "--encrypt", "--type", "luks2", "--reduce-device-size", "8M",
			"--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--sector-size", sector, "--key-file", kf, "-q", "--batch-mode", path); r.Code != 0 {
			t.Fatalf("cryptsetup reencrypt: %s%s", r.Stdout, r.Stderr)
		}
		img, err := Open(context.Background(), mustOpen(t, path, true), formats.OpenOptions{Key: pass, Writable: true})
		if err != nil {
			t.Fatal(err)
		}
		// The device shrank by 8 MiB: its first 4 MiB are the original's.
		n := len(orig) - 8<<20
		got := readAll(t, img)
		if len(got) < n || !bytes.Equal(got[:n], orig[:n]) {
			t.Fatalf("sector %s: vdisk decrypts other bytes than cryptsetup encrypted", sector)
		}
		before, _ := os.ReadFile(path)
		if _, err := img.WriteAt(orig[:n], 0); err != nil {
			t.Fatal(err)
		}
		img.Close()
		after, _ := os.ReadFile(path)
		if !bytes.Equal(before, after) {
			t.Fatalf("sector %s: vdisk's ciphertext differs from cryptsetup's for the same plaintext", sector)
		}
	}
}

func mustOpen(t *testing.T, path string, writable bool) formats.File {
	t.Helper()
	f, err := formats.OpenOSFile(path, writable)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestWrongKey: a wrong or missing key is a clear error naming the image
// and the slots tried; the key is not in it and the file is unchanged.
func TestWrongKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "w.luks")
	img := create(t, path, 1<<20, "key-secret=sec0,iter-time=10")
	img.Close()
	sum := func() [32]byte { b, _ := os.ReadFile(path); return sha256.Sum256(b) }
	before := sum()
	wrong := []byte("Hunter2-not-the-key")
	_, err := formats.Open(context.Background(), path, formats.OpenOptions{Key: wrong, Writable: true})
	if !errors.Is(err, formats.ErrBadKey) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "1 tried") {
		t.Fatalf("wrong key: %v", err)
	}
	if strings.Contains(err.Error(), string(wrong)) || strings.Contains(err.Error(), string(pass)) {
		t.Fatalf("the error shows a key: %v", err)
	}
	if _, err := formats.Open(context.Background(), path, formats.OpenOptions{}); !errors.Is(err, formats.ErrKeyRequired) {
		t.Fatalf("no key: %v", err)
	}
	meta, err := formats.Open(context.Background(), path, formats.OpenOptions{MetadataOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := meta.ReadAt(make([]byte, 512), 0); !errors.Is(err, formats.ErrKeyRequired) {
		t.Fatalf("read without key: %v", err)
	}
	meta.Close()
	if sum() != before {
		t.Fatal("a failed open changed the file")
	}
}

// TestCreateLUKS2JudgedByCryptsetup: vdisk's LUKS2 volumes (luks-type=luks2,
// Argon2id and PBKDF2 key slots) are what cryptsetup luksDump shows and
// opens with the passphrase; vdisk reads back what it wrote.
func TestCreateLUKS2JudgedByCryptsetup(t *testing.T) {
	for _, c := range []struct{ opts, kdf string }{
		{"key-secret=sec0,luks-type=luks2,pbkdf=argon2id,pbkdf-memory=8192,pbkdf-time=4", "argon2id"},
		{"key-secret=sec0,luks-type=luks2,pbkdf=pbkdf2,iter-time=10,cipher-alg=aes-128,cipher-mode=cbc,ivgen-alg=essiv", "pbkdf2"},
	} {
		path := filepath.Join(t.TempDir(), "v2.luks")
		img := create(t, path, 2<<20, c.opts)
		want := pattern(2 << 20)
		mustWriteAt(t, img, want, 0)
		img.Close()
		r := qemutest.Exec(t, "cryptsetup", "luksDump", path)
		if r.Code != 0 {
			t.Fatalf("luksDump: %s", r.Stderr)
		}
		for _, s := range []string{"Version:       \t2", "0: luks2", "PBKDF:      " + c.kdf, "0: pbkdf2", "offset: 16777216 [bytes]", "AF stripes: 4000"} {
			if !strings.Contains(r.Stdout, s) {
				t.Errorf("%s: luksDump lacks %q:\n%s", c.opts, s, r.Stdout)
			}
		}
		kf := writeFile(t, "key", pass)
		if r := qemutest.Exec(t, "cryptsetup", "open", "--test-passphrase", "--key-file", kf, path); r.Code != 0 {
			t.Fatalf("%s: cryptsetup refuses the passphrase: %s", c.opts, r.Stderr)
		}
		kf = writeFile(t, "bad", []byte("bad"))
		if r := qemutest.Exec(t, "cryptsetup", "open", "--test-passphrase", "--key-file", kf, path); r.Code == 0 {
			t.Fatalf("%s: cryptsetup accepts a wrong passphrase", c.opts)
		}
		re, err := formats.Open(context.Background(), path, formats.OpenOptions{Key: pass})
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, re); !bytes.Equal(got, want) {
			t.Fatalf("%s: vdisk rereads other bytes", c.opts)
		}
		re.Close()
	}
}

func mustWriteAt(t *testing.T, img formats.Writable, p []byte, off int64) {
	t.Helper()
	if _, err := img.WriteAt(p, off); err != nil {
		t.Fatal(err)
	}
}
