package luks

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vdiskio/vdisk/formats"
)

// LimitsFrom maps the image limits to key-derivation limits.
func LimitsFrom(l formats.Limits) Limits {
	l = l.WithDefaults()
	return Limits{MaxIterations: l.MaxKDFIterations, MaxTotalIterations: 3 * uint64(l.MaxKDFIterations),
		MaxArgon2MemoryKiB: l.MaxKDFMemoryKiB}
}

// OptionNames are qemu's LUKS create option names without their prefix
// ("encrypt." in qcow2, none in the luks format).
var OptionNames = struct{ KeySecret, CipherAlg, CipherMode, IVGenAlg, IVGenHashAlg, HashAlg, IterTime string }{
	"key-secret", "cipher-alg", "cipher-mode", "ivgen-alg", "ivgen-hash-alg", "hash-alg", "iter-time"}

// OptionSpecs are the LUKS create options with prefix, with qemu's help.
func OptionSpecs(prefix string, keySecretHelp string) []formats.OptionSpec {
	return []formats.OptionSpec{
		{Name: prefix + "cipher-alg", Type: formats.OptString, Help: "Name of encryption cipher algorithm"},
		{Name: prefix + "cipher-mode", Type: formats.OptString, Help: "Name of encryption cipher mode"},
		{Name: prefix + "hash-alg", Type: formats.OptString, Help: "Name of encryption hash algorithm"},
		{Name: prefix + "iter-time", Type: formats.OptInt, Help: "Time to spend in PBKDF in milliseconds"},
		{Name: prefix + "ivgen-alg", Type: formats.OptString, Help: "Name of IV generator algorithm"},
		{Name: prefix + "ivgen-hash-alg", Type: formats.OptString, Help: "Name of IV generator hash algorithm"},
		{Name: prefix + "key-secret", Type: formats.OptString, Help: keySecretHelp},
	}
}

// ParamsFromOptions reads the LUKS create options (with prefix) and looks
// the key secret up in secrets. The caller zeroes nothing: the returned
// Passphrase aliases the secret.
func ParamsFromOptions(name, prefix string, o formats.Options, secrets map[string][]byte) (CreateParams, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w: %s", name, formats.ErrInvalidOption, fmt.Sprintf(format, args...))
	}
	id := o.String(prefix + "key-secret")
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

// CipherFromOptions reads the cipher, hash and iter-time create options.
func CipherFromOptions(name, prefix string, o formats.Options) (CreateParams, error) {
	var p CreateParams
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w: %s", name, formats.ErrInvalidOption, fmt.Sprintf(format, args...))
	}
	if alg := o.String(prefix + "cipher-alg"); alg != "" {
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
	p.Spec.Mode = o.String(prefix + "cipher-mode")
	p.Spec.IVGen = o.String(prefix + "ivgen-alg")
	p.Spec.IVHash = o.String(prefix + "ivgen-hash-alg")
	if p.Spec.Mode == "" {
		p.Spec.Mode = ModeXTS
	}
	if p.KeyBytes == 0 {
		p.KeyBytes = 32
	}
	if p.Spec.Mode == ModeXTS {
		p.KeyBytes *= 2
	}
	p.Hash = o.String(prefix + "hash-alg")
	if p.Hash != "" {
		if _, err := hashFunc(p.Hash); err != nil {
			return p, bad("%shash-alg: %v", prefix, err)
		}
	}
	if o.IsSet(prefix + "iter-time") {
		ms := o.Int(prefix + "iter-time")
		if ms <= 0 || ms > 1<<31 {
			return p, bad("%siter-time %d ms is outside 1..%d", prefix, ms, int64(1)<<31)
		}
		p.IterTime = time.Duration(ms) * time.Millisecond
	}
	p = p.withDefaults()
	if err := p.Spec.check(p.KeyBytes); err != nil {
		return p, bad("%v", err)
	}
	return p, nil
}
