package main

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vdiskio/vdisk/internal/qemutest"
)

const (
	cliPass   = "Cli-Secret-42"
	cliSecret = "secret,id=sec0,data=" + cliPass
)

// TestParseSecretObject: qemu's --object secret forms, and errors that
// never quote the secret.
func TestParseSecretObject(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	os.WriteFile(file, []byte("from,file"), 0o600)
	for _, c := range []struct{ obj, id, want string }{
		{"secret,id=a,data=abc", "a", "abc"},
		{"secret,id=b,data=with,,comma", "b", "with,comma"},
		{"secret,id=c,file=" + file, "c", "from,file"},
		{"secret,id=d,data=c2VjcmV0,format=base64", "d", "secret"},
		{"secret,id=e,data=plain,format=raw", "e", "plain"},
	} {
		id, got, err := parseSecretObject(c.obj)
		if err != nil || id != c.id || string(got) != c.want {
			t.Errorf("%s: got %q %q %v", c.obj, id, got, err)
		}
	}
	for _, obj := range []string{"tls-creds-x509,id=t", "secret,data=TOPSECRET", "secret,id=x,data=TOPSECRET,file=" + file,
		"secret,id=x", "secret,id=x,data=TOPSECRET,format=hex", "secret,id=x,data=TOPSECRET!,format=base64",
		"secret,id=x,data=TOPSECRET,keyid=k", "secret,id=x,data=TOPSECRET,colour=red"} {
		_, _, err := parseSecretObject(obj)
		if err == nil {
			t.Errorf("%s: accepted", obj)
		} else if strings.Contains(err.Error(), "TOPSECRET") {
			t.Errorf("%s: the error shows the secret: %v", obj, err)
		}
	}
}

// encryptedSamples makes the encrypted images info must describe as qemu
// does: LUKS qcow2 (default, by qemu-img; cbc-essiv, by vdisk), legacy AES
// qcow2 (qemu-img) and a luks volume (vdisk).
func encryptedSamples(t *testing.T) []string {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	data := make([]byte, 1<<20)
	rand.Read(data[:300000])
	os.WriteFile(src, data, 0o644)
	var out []string
	for i, args := range [][]string{
		{"-O", "qcow2", "-o", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10"},
		{"-O", "qcow2", "-o", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10,encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=essiv"},
		{"-O", "qcow2", "-o", "encrypt.format=aes,encrypt.key-secret=sec0,compat=0.10"},
		{"-O", "luks", "-o", "key-secret=sec0,iter-time=10"},
	} {
		path := filepath.Join(dir, []string{"a.qcow2", "b.qcow2", "c.qcow2", "d.luks"}[i])
		args = append(append([]string{"convert", "--object", cliSecret}, args...), src, path)
		if i%2 == 0 {
			qemutest.Img(t, args...) // qemu's PBKDF calibration takes a second: two images only
		} else if _, stderr, code := vdisk(t, args...); code != 0 {
			t.Fatal(stderr)
		}
		out = append(out, path)
	}
	return out
}

// TestInfoEncryptedMatchesQemu: info (JSON and human, with and without the
// key) prints exactly what qemu-img info prints for encrypted images, and
// map with the key what qemu-img map prints (no host offsets).
func TestInfoEncryptedMatchesQemu(t *testing.T) {
	t.Parallel()
	for _, path := range encryptedSamples(t) {
		opts := "driver=" + map[bool]string{true: "luks", false: "qcow2"}[strings.HasSuffix(path, ".luks")] + ",file.filename=" + path + ",key-secret=sec0"
		if !strings.HasSuffix(path, ".luks") {
			opts = strings.Replace(opts, "key-secret", "encrypt.key-secret", 1)
		}
		for _, args := range [][]string{
			{"info", "--output=json", path},
			{"info", path},
			{"info", "--object", cliSecret, "--image-opts", opts},
			{"map", "--output=json", "--object", cliSecret, "--image-opts", opts},
		} {
			want := qemutest.Img(t, args...)
			got, stderr, code := vdisk(t, args...)
			if args[0] == "info" && args[1] == "--object" {
				// qemu names an --image-opts image json:{...}; vdisk by its file.
				want = strings.Replace(want, want[:strings.Index(want, "\n")], "image: "+path, 1)
			}
			if code != 0 || got != want {
				t.Errorf("vdisk %s: exit %d %s\n got: %s\nwant: %s", strings.Join(args, " "), code, stderr, got, want)
			}
		}
	}
}

// TestConvertEncryptedBothWays: vdisk's CLI converts plain → encrypted
// qcow2 → luks → plain with qemu-img's syntax; qemu-img reads every
// step with the same secret; and the key never shows on any output.
func TestConvertEncryptedBothWays(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	want := make([]byte, 2<<20)
	rand.Read(want[:700000])
	copy(want[1<<20:], bytes.Repeat([]byte("text "), 50000))
	src := filepath.Join(dir, "src.raw")
	os.WriteFile(src, want, 0o644)
	enc := filepath.Join(dir, "enc.qcow2")
	vol := filepath.Join(dir, "vol.luks")
	back := filepath.Join(dir, "back.raw")
	steps := [][]string{
		{"convert", "-p", "--object", cliSecret, "-O", "qcow2", "-o", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10", src, enc},
		{"convert", "-p", "--object", cliSecret, "--image-opts", "driver=qcow2,file.filename=" + enc + ",encrypt.key-secret=sec0",
			"-O", "luks", "-o", "key-secret=sec0,iter-time=10", vol},
		{"convert", "-p", "--object", "secret,id=s2,data=" + cliPass, "--key-secret", "s2", vol, "-O", "raw", back},
	}
	for _, args := range steps {
		out, stderr, code := vdisk(t, args...)
		if code != 0 {
			t.Fatalf("vdisk %s: exit %d: %s", strings.Join(args, " "), code, stderr)
		}
		if strings.Contains(out+stderr, cliPass) {
			t.Fatalf("vdisk %s prints the key", strings.Join(args, " "))
		}
	}
	for _, img := range []string{"driver=qcow2,file.filename=" + enc + ",encrypt.key-secret=sec0", "driver=luks,file.filename=" + vol + ",key-secret=sec0"} {
		if r := qemutest.Exec(t, "qemu-img", "compare", "--object", cliSecret, "--image-opts", img, "driver=raw,file.filename="+src); r.Code != 0 {
			t.Fatalf("qemu-img compare %s: %s%s", img, r.Stdout, r.Stderr)
		}
	}
	if got, _ := os.ReadFile(back); !bytes.Equal(got, want) {
		t.Fatal("the round trip changed the content")
	}
	for _, name := range []string{enc, vol, back} {
		b, _ := os.ReadFile(name)
		if name != back && bytes.Contains(b, want[:4096]) {
			t.Fatalf("%s holds plaintext", name)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		if bytes.Contains(b, []byte(cliPass)) {
			t.Fatalf("%s holds the passphrase", e.Name())
		}
	}
}

// TestEncryptedCLIErrors: a wrong key, a missing key, a missing secret and
// -c with encryption are one line each, exit 1, and leave nothing behind.
func TestEncryptedCLIErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src := filepath.Join(dir, "src.raw")
	os.WriteFile(src, make([]byte, 1<<20), 0o644)
	enc := filepath.Join(dir, "enc.qcow2")
	if _, stderr, code := vdisk(t, "convert", "--object", cliSecret, "-O", "qcow2", "-o", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10", src, enc); code != 0 {
		t.Fatal(stderr)
	}
	out := filepath.Join(dir, "out.raw")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"convert", "--object", "secret,id=sec0,data=Wrong-Key-99", "--key-secret", "sec0", enc, out}, "none of the 1 active key slots (1 tried)"},
		{[]string{"convert", enc, out}, "needs its key"},
		{[]string{"convert", "--key-secret", "nope", enc, out}, "No secret with id 'nope' found"},
		{[]string{"convert", "-c", "--object", cliSecret, "-O", "qcow2", "-o", "encrypt.format=luks,encrypt.key-secret=sec0", src, out}, "Compression and encryption not supported at the same time"},
		{[]string{"create", "-f", "qcow2", "-o", "encrypt.format=luks", out, "1M"}, "Parameter 'encrypt.key-secret' is required for cipher"},
		{[]string{"create", "-f", "qcow2", "--object", cliSecret, "-o", "encrypt.format=aes,encrypt.key-secret=sec0", out, "1M"}, "insecure"},
	} {
		_, stderr, code := vdisk(t, c.args...)
		if code != 1 || !strings.Contains(stderr, c.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("vdisk %s: exit %d, stderr %q, want %q", strings.Join(c.args, " "), code, stderr, c.want)
		}
		if strings.Contains(stderr, "Wrong-Key-99") || strings.Contains(stderr, cliPass) {
			t.Errorf("vdisk %s: the key is in the error", strings.Join(c.args, " "))
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("vdisk %s left %s", strings.Join(c.args, " "), out)
		}
	}
}

// TestMeasureEncryptedMatchesQemu: measure counts the LUKS header as
// qemu-img measure does (qcow2 with encrypt.format=luks, and luks).
// iter-time=10: qemu's measure builds a whole LUKS header, PBKDF included.
func TestMeasureEncryptedMatchesQemu(t *testing.T) {
	t.Parallel()
	src := filepath.Join(t.TempDir(), "src.raw")
	data := make([]byte, 3<<20)
	rand.Read(data[:1<<20])
	os.WriteFile(src, data, 0o644)
	for _, args := range [][]string{
		{"measure", "--output=json", "--object", cliSecret, "-O", "qcow2", "-o", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10,encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc,cluster_size=4096", src},
		{"measure", "--output=json", "--object", cliSecret, "-O", "luks", "-o", "key-secret=sec0,iter-time=10", src},
	} {
		want := qemutest.Img(t, args...)
		got, stderr, code := vdisk(t, args...)
		if code != 0 || got != want {
			t.Errorf("vdisk %s: exit %d %s\n got: %s\nwant: %s", strings.Join(args, " "), code, stderr, got, want)
		}
	}
}

// TestSecretOptionCommasLikeQemu: --object secret,... and --image-opts
// split on single commas with ",," a comma in a value, as qemu-img does:
// for each pair, vdisk convert reads the encrypted image exactly when
// qemu-img convert does (a leading comma, an escaped comma that swallows the
// separator, a comma in the key and in the file name). A trailing comma
// is left out: qemu-img accepts it, vdisk refuses it (an empty item).
func TestSecretOptionCommasLikeQemu(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	enc := filepath.Join(dir, "e,x.qcow2")
	qemutest.Img(t, "create", "-q", "-f", "qcow2", "--object", "secret,id=sec0,data=ab,,c",
		"-o", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10", enc, "1M")
	name := strings.ReplaceAll(enc, ",", ",,")
	good := "driver=qcow2,file.filename=" + name + ",encrypt.key-secret=sec0"
	for _, c := range []struct{ object, opts string }{
		{"secret,id=sec0,data=ab,,c", good},
		{",secret,id=sec0,data=ab,,c", good},
		{"secret,,id=sec0,data=ab,,c", good},
		{"secret,id=sec0,data=ab,c", good},
		{"secret,id=sec0,data=abc", good},
		{"secret,id=sec0,data=ab,,c", "," + good},
		{"secret,id=sec0,data=ab,,c", "driver=qcow2,,file.filename=" + name + ",encrypt.key-secret=sec0"},
		{"secret,id=sec0,data=ab,,c", "driver=qcow2,file.filename=" + enc + ",encrypt.key-secret=sec0"},
	} {
		out := filepath.Join(dir, "out.raw")
		args := []string{"convert", "--object", c.object, "--image-opts", c.opts, "-O", "raw", out}
		q := qemutest.Exec(t, "qemu-img", args...)
		os.Remove(out)
		_, stderr, code := vdisk(t, args...)
		if (q.Code == 0) != (code == 0) {
			t.Errorf("%s: vdisk exit %d (%s), qemu-img exit %d (%s)", strings.Join(args, " "), code, strings.TrimSpace(stderr), q.Code, strings.TrimSpace(q.Stderr))
		}
	}
}
