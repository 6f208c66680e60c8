package luks

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemutest"
)

var testPass = []byte("correct horse battery staple")

// cryptsetup runs cryptsetup with the passphrase on a key file.
func cryptsetup(t *testing.T, pass []byte, args ...string) qemutest.Result {
	t.Helper()
	kf := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(kf, pass, 0o600); err != nil {
		t.Fatal(err)
	}
	return qemutest.Exec(t, "cryptsetup", append(args, "--key-file", kf)...)
}

// formatVolume makes a LUKS volume of size bytes with cryptsetup.
func formatVolume(t *testing.T, size int64, args ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vol.luks")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
	r := cryptsetup(t, testPass, append([]string{"luksFormat", "-q", "--batch-mode"}, append(args, path)...)...)
	if r.Code != 0 {
		t.Fatalf("cryptsetup luksFormat %v: %s%s", args, r.Stdout, r.Stderr)
	}
	return path
}

func openVolume(t *testing.T, path string) (*Volume, *os.File) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, _ := f.Stat()
	v, err := Parse(f, st.Size(), path)
	if err != nil {
		t.Fatal(err)
	}
	return v, f
}

// TestCryptsetupVolumes: vdisk parses and unlocks the volumes cryptsetup
// makes, LUKS1 and LUKS2, with each cipher and KDF vdisk supports, and
// refuses a wrong passphrase naming the slots tried.
func TestCryptsetupVolumes(t *testing.T) {
	cases := []struct {
		name string
		args []string
		spec string
	}{
		{"luks1 default", []string{"--type", "luks1", "--pbkdf-force-iterations", "1000"}, "aes-xts-plain64"},
		{"luks1 cbc-essiv sha1", []string{"--type", "luks1", "--pbkdf-force-iterations", "1000", "--cipher", "aes-cbc-essiv:sha256", "--key-size", "256", "--hash", "sha1"}, "aes-cbc-essiv:sha256"},
		{"luks1 xts-plain aes-128 sha512", []string{"--type", "luks1", "--pbkdf-force-iterations", "1000", "--cipher", "aes-xts-plain", "--key-size", "256", "--hash", "sha512"}, "aes-xts-plain"},
		{"luks1 cbc-plain64 aes-192", []string{"--type", "luks1", "--pbkdf-force-iterations", "1000", "--cipher", "aes-cbc-plain64", "--key-size", "192"}, "aes-cbc-plain64"},
		{"luks2 pbkdf2", []string{"--type", "luks2", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"}, "aes-xts-plain64"},
		{"luks2 argon2id 4k sectors", []string{"--type", "luks2", "--pbkdf", "argon2id", "--pbkdf-force-iterations", "4", "--pbkdf-memory", "32768", "--pbkdf-parallel", "1", "--sector-size", "4096"}, "aes-xts-plain64"},
		{"luks2 argon2i", []string{"--type", "luks2", "--pbkdf", "argon2i", "--pbkdf-force-iterations", "4", "--pbkdf-memory", "32768", "--pbkdf-parallel", "2"}, "aes-xts-plain64"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := formatVolume(t, 20<<20, c.args...)
			v, f := openVolume(t, path)
			if got := v.Spec.String(); got != c.spec {
				t.Errorf("spec %s, cryptsetup made %s", got, c.spec)
			}
			if _, err := v.Unlock(f, testPass, Limits{}); err != nil {
				t.Fatalf("unlock: %v", err)
			}
			_, err := v.Unlock(f, []byte("wrong"), Limits{})
			if !errors.Is(err, formats.ErrBadKey) || !strings.Contains(err.Error(), "1 tried") || !strings.Contains(err.Error(), path) {
				t.Fatalf("wrong passphrase: %v", err)
			}
			if strings.Contains(err.Error(), "wrong") && strings.Count(err.Error(), "wrong") > 1 {
				t.Fatalf("error quotes the passphrase: %v", err)
			}
		})
	}
}

// TestCryptsetupMultipleSlots: a passphrase in the last of several slots
// opens the volume; the error for a wrong one counts every active slot.
func TestCryptsetupMultipleSlots(t *testing.T) {
	path := formatVolume(t, 20<<20, "--type", "luks1", "--pbkdf-force-iterations", "1000")
	for i, pass := range []string{"second", "third"} {
		kf := filepath.Join(t.TempDir(), "new")
		os.WriteFile(kf, []byte(pass), 0o600)
		if r := cryptsetup(t, testPass, "luksAddKey", "-q", "--pbkdf-force-iterations", "1000", "--key-slot", strconv.Itoa(5+i), path, kf); r.Code != 0 {
			t.Fatalf("luksAddKey: %s", r.Stderr)
		}
	}
	v, f := openVolume(t, path)
	if v.ActiveSlots() != 3 {
		t.Fatalf("%d active slots, cryptsetup made 3", v.ActiveSlots())
	}
	if _, err := v.Unlock(f, []byte("third"), Limits{}); err != nil {
		t.Fatal(err)
	}
	_, err := v.Unlock(f, []byte("none"), Limits{})
	if !errors.Is(err, formats.ErrBadKey) || !strings.Contains(err.Error(), "none of the 3 active key slots (3 tried)") {
		t.Fatalf("got %v", err)
	}
}

var dumpField = regexp.MustCompile(`(?m)^([A-Za-z ]+):\s*(.*)$`)

// TestCreate1JudgedByCryptsetup: the header vdisk writes is what
// cryptsetup reads (luksDump) and opens with the passphrase only.
func TestCreate1JudgedByCryptsetup(t *testing.T) {
	for _, c := range []struct {
		spec     Spec
		keyBytes int
		hash     string
		want     map[string]string
	}{
		{Spec{}, 0, "", map[string]string{"Cipher name": "aes", "Cipher mode": "xts-plain64", "Hash spec": "sha256", "MK bits": "512"}},
		{Spec{Cipher: "aes", Mode: ModeCBC, IVGen: IVESSIV, IVHash: "sha256"}, 16, "sha1", map[string]string{"Cipher name": "aes", "Cipher mode": "cbc-essiv:sha256", "Hash spec": "sha1", "MK bits": "128"}},
		{Spec{Cipher: "aes", Mode: ModeCBC, IVGen: IVPlain64}, 32, "sha512", map[string]string{"Cipher mode": "cbc-plain64", "Hash spec": "sha512", "MK bits": "256"}},
	} {
		area, vol, _, err := Create1("new.luks", CreateParams{Spec: c.spec, KeyBytes: c.keyBytes, Hash: c.hash, Passphrase: testPass, IterTime: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "new.luks")
		os.WriteFile(path, append(area, make([]byte, 1<<20)...), 0o644)
		r := qemutest.Exec(t, "cryptsetup", "luksDump", path)
		if r.Code != 0 {
			t.Fatalf("luksDump: %s", r.Stderr)
		}
		got := map[string]string{}
		for _, m := range dumpField.FindAllStringSubmatch(r.Stdout, -1) {
			got[strings.TrimSpace(m[1])] = strings.TrimSpace(m[2])
		}
		for k, v := range c.want {
			if got[k] != v {
				t.Errorf("%v: luksDump %s = %q, want %q", c.spec, k, got[k], v)
			}
		}
		if got["Payload offset"] != strconv.FormatInt(vol.PayloadOffset/512, 10) || got["Version"] != "1" {
			t.Errorf("luksDump payload offset %q version %q", got["Payload offset"], got["Version"])
		}
		if n := strings.Count(r.Stdout, ": ENABLED"); n != 1 || strings.Count(r.Stdout, ": DISABLED") != 7 {
			t.Errorf("luksDump shows %d enabled slots:\n%s", n, r.Stdout)
		}
		if r := cryptsetup(t, testPass, "open", "--test-passphrase", path); r.Code != 0 {
			t.Errorf("cryptsetup refuses vdisk's slot: %s", r.Stderr)
		}
		if r := cryptsetup(t, []byte("nope"), "open", "--test-passphrase", path); r.Code == 0 {
			t.Errorf("cryptsetup accepts a wrong passphrase")
		}
	}
}

// TestAFSplitMerge: merging a split key gives it back; any changed stripe
// destroys it.
func TestAFSplitMerge(t *testing.T) {
	key := bytes.Repeat([]byte{0xa5, 0x5a, 7, 9}, 16)
	for _, n := range []int{16, 24, 32, 64} {
		split, err := afSplit(sha256.New, key[:n], defaultStripes)
		if err != nil {
			t.Fatal(err)
		}
		if got := afMerge(sha256.New, split, n, defaultStripes); !bytes.Equal(got, key[:n]) {
			t.Fatalf("%d-byte key: merge gave %x", n, got)
		}
		split[n*17] ^= 1
		if got := afMerge(sha256.New, split, n, defaultStripes); bytes.Equal(got, key[:n]) {
			t.Fatalf("%d-byte key survives a changed stripe", n)
		}
	}
}

// hostileSlot1 rewrites slot 0 of a LUKS1 header.
func hostileHeader(t *testing.T, mutate func(h *header1)) (*Volume, *bytes.Reader) {
	t.Helper()
	area, _, _, err := Create1("h.luks", CreateParams{Passphrase: testPass, SlotIterations: 1000, DigestIterations: 1000})
	if err != nil {
		t.Fatal(err)
	}
	h := parseHeader1(area)
	mutate(&h)
	hdr, err := h.encode()
	if err != nil {
		t.Fatal(err)
	}
	copy(area, hdr)
	v, err := Parse(bytes.NewReader(area), int64(len(area)), "h.luks")
	if err != nil {
		t.Fatal(err)
	}
	return v, bytes.NewReader(area)
}

// TestHostileCosts: iteration counts, Argon2 costs and total work named by
// a header are bounded before any derivation runs.
func TestHostileCosts(t *testing.T) {
	for _, c := range []struct {
		name   string
		mutate func(h *header1)
		lim    Limits
		tried  string // key slots derived before the refusal
	}{
		{"slot iterations 4e9", func(h *header1) { h.Slots[0].Iterations = 4_000_000_000 }, Limits{}, "pbkdf2 iterations 4000000000 exceed the limit of 16000000"},
		{"digest iterations 4e9", func(h *header1) { h.MKDigestIter = 4_000_000_000 }, Limits{}, "pbkdf2 iterations 4000000000 exceed"},
		{"8 slots over the total budget", func(h *header1) {
			for i := range h.Slots {
				h.Slots[i].Active, h.Slots[i].Iterations, h.Slots[i].KeyOffset = slotActive1, 100_000, h.Slots[0].KeyOffset
			}
		}, Limits{MaxTotalIterations: 250_000}, "(2 key slots tried)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			v, r := hostileHeader(t, c.mutate)
			_, err := v.Unlock(r, []byte("wrong"), c.lim)
			if !errors.Is(err, formats.ErrLimit) || !strings.Contains(err.Error(), c.tried) {
				t.Fatalf("got %v, want a limit error with %q", err, c.tried)
			}
		})
	}
	k := KDF{Type: KDFArgon2id, Time: 4, MemoryKiB: 4 << 20, CPUs: 4, Salt: []byte("salt")}
	if err := k.check(Limits{}.WithDefaults()); !errors.Is(err, formats.ErrLimit) {
		t.Fatalf("argon2 4 GiB: %v", err)
	}
	k.MemoryKiB, k.Time = 1024, 1000
	if err := k.check(Limits{}.WithDefaults()); !errors.Is(err, formats.ErrLimit) {
		t.Fatalf("argon2 1000 passes: %v", err)
	}
}

// TestHostileStructure: counts and offsets are checked before use.
func TestHostileStructure(t *testing.T) {
	area, _, _, err := Create1("h.luks", CreateParams{Passphrase: testPass, SlotIterations: 1000, DigestIterations: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		mutate func(h *header1)
		want   error
	}{
		{"stripes 2^32-1", func(h *header1) { h.Slots[0].Stripes = 1<<32 - 1 }, formats.ErrCorrupt},
		{"key bytes 4096", func(h *header1) { h.KeyBytes = 4096 }, formats.ErrCorrupt},
		{"key material past the payload", func(h *header1) { h.Slots[0].KeyOffset = h.PayloadOffset }, formats.ErrCorrupt},
		{"slot state garbage", func(h *header1) { h.Slots[3].Active = 7 }, formats.ErrCorrupt},
		{"detached header", func(h *header1) { h.PayloadOffset = 0 }, formats.ErrUnsupported},
		{"cipher serpent", func(h *header1) { h.CipherName = "serpent" }, formats.ErrUnsupported},
		{"mode without ivgen", func(h *header1) { h.CipherMode = "xts" }, formats.ErrCorrupt},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := bytes.Clone(area)
			h := parseHeader1(b)
			c.mutate(&h)
			hdr, _ := h.encode()
			copy(b, hdr)
			v, err := Parse(bytes.NewReader(b), int64(len(b)), "h.luks")
			if err == nil {
				err = v.Check()
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

// TestRefusedCiphers: ciphers vdisk does not implement are refused by
// name, when reading cryptsetup's volumes and when creating.
func TestRefusedCiphers(t *testing.T) {
	// cryptsetup cannot format these without device-mapper (it asks the
	// kernel for the cipher): the headers are vdisk's with the name changed.
	for _, name := range []string{"serpent", "twofish", "cast5"} {
		v, r := hostileHeader(t, func(h *header1) { h.CipherName = name })
		err := v.Check()
		if !errors.Is(err, formats.ErrUnsupported) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
		if _, err := v.Unlock(r, testPass, Limits{}); !errors.Is(err, formats.ErrUnsupported) {
			t.Errorf("%s unlock: %v", name, err)
		}
	}
	for _, alg := range []string{"twofish-256", "serpent-128", "cast5-128", "sm4"} {
		name, _, _ := strings.Cut(alg, "-")
		if _, err := CipherFromOptions("new.luks", "", CipherOptions{CipherAlg: alg}); !errors.Is(err, formats.ErrInvalidOption) || !strings.Contains(err.Error(), name) {
			t.Errorf("create with %s: %v", alg, err)
		}
	}
}
