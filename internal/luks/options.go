package luks

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vdiskio/vdisk/formats"
)

// MaxIterTimeMs is the largest iter-time create option (the drivers' tags
// say max:"2147483648").
const MaxIterTimeMs = 1 << 31

// LimitsFrom maps the image limits to key-derivation limits.
func LimitsFrom(l formats.Limits) Limits {
	l = l.WithDefaults()
	return Limits{MaxIterations: l.MaxKDFIterations, MaxTotalIterations: 3 * uint64(l.MaxKDFIterations),
		MaxArgon2MemoryKiB: l.MaxKDFMemoryKiB}
}

// CipherOptions are the LUKS create options qemu shares between the luks
// format (cipher-alg, ...) and qcow2 (encrypt.cipher-alg, ...): each driver
// declares them in its own typed CreateOptions, which are the -o names and
// help, and hands the decoded values here. The zero value is qemu's
// defaults (aes-256-xts-plain64, sha256, 2 s of PBKDF2).
type CipherOptions struct {
	KeySecret    string // ID of the secret (formats.OpenOptions.Secrets) holding the passphrase
	CipherAlg    string // NAME-BITS, e.g. aes-256
	CipherMode   string // xts, cbc, ...
	IVGenAlg     string // plain64, essiv, ...
	IVGenHashAlg string // the essiv hash
	HashAlg      string // the PBKDF2 and anti-forensic split hash
	IterTimeMs   int64  // PBKDF2 time to spend; 0 for the default
}

// ParamsFromOptions checks the LUKS create options (named with prefix in
// errors) and looks the key secret up in secrets. The caller zeroes
// nothing: the returned Passphrase aliases the secret.
func ParamsFromOptions(name, prefix string, o CipherOptions, secrets map[string][]byte) (CreateParams, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w: %s", name, formats.ErrInvalidOption, fmt.Sprintf(format, args...))
	}
	id := o.KeySecret
	if id == "" {
		return CreateParams{}, bad("Parameter '%skey-secret' is required for cipher", prefix)
	}
	secret, ok := secrets[id]
	if !ok {
		return CreateParams{}, bad("No secret with id '%s' found", id)
	}
	p, err := CipherFromOptions(name, prefix, o)
	p.Passphrase = secret
	return p, err
}

// CipherFromOptions checks the cipher, hash and iter-time create options
// (named with prefix in errors).
func CipherFromOptions(name, prefix string, o CipherOptions) (CreateParams, error) {
	var p CreateParams
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w: %s", name, formats.ErrInvalidOption, fmt.Sprintf(format, args...))
	}
	if alg := o.CipherAlg; alg != "" {
		cipherName, bits, _ := strings.Cut(alg, "-")
		n, err := strconv.Atoi(bits)
		if err != nil || n%8 != 0 {
			return p, bad("%scipher-alg %q is not NAME-BITS (aes-256)", prefix, alg)
		}
		if cipherName != "aes" {
			return p, bad("%scipher-alg %s is not supported: vdisk implements aes only (the Go standard library has no %s)", prefix, alg, cipherName)
		}
		p.Spec.Cipher, p.KeyBytes = cipherName, n/8
	}
	p.Spec.Mode = o.CipherMode
	p.Spec.IVGen = o.IVGenAlg
	p.Spec.IVHash = o.IVGenHashAlg
	if p.Spec.Mode == "" {
		p.Spec.Mode = ModeXTS
	}
	if p.KeyBytes == 0 {
		p.KeyBytes = 32
	}
	if p.Spec.Mode == ModeXTS {
		p.KeyBytes *= 2
	}
	p.Hash = o.HashAlg
	if p.Hash != "" {
		if _, err := hashFunc(p.Hash); err != nil {
			return p, bad("%shash-alg: %v", prefix, err)
		}
	}
	if ms := o.IterTimeMs; ms != 0 {
		// The drivers' option tables refuse an explicit 0 (min 1).
		if ms < 0 || ms > MaxIterTimeMs {
			return p, bad("%siter-time %d ms is outside 1..%d", prefix, ms, int64(MaxIterTimeMs))
		}
		p.IterTime = time.Duration(ms) * time.Millisecond
	}
	p = p.withDefaults()
	if err := p.Spec.check(p.KeyBytes); err != nil {
		return p, bad("%v", err)
	}
	return p, nil
}
