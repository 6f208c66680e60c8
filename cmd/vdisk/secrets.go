package main

import (
	"encoding/base64"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/qemuopt"
)

// cryptoFlags are qemu-img's ways of giving keys: --object secret,...
// defines secrets by id; --image-opts turns a file name into an option
// string (driver=qcow2,file.filename=x.qcow2,encrypt.key-secret=sec0); and
// vdisk's --key-secret ID is the short form of encrypt.key-secret=ID (or,
// for the luks format, key-secret=ID) for the images named on the command
// line. Keys come only from these flags, never from the environment.
type cryptoFlags struct {
	objects   []string
	imageOpts bool
	keySecret string
	secrets   map[string][]byte
}

func addCryptoFlags(root *cobra.Command, g *globals) {
	f := root.PersistentFlags()
	f.StringArrayVar(&g.crypto.objects, "object", nil,
		"define a secret: secret,id=ID,data=TEXT|file=PATH[,format=raw|base64] (qemu-img's --object)")
	f.BoolVar(&g.crypto.imageOpts, "image-opts", false,
		"image names are option strings: driver=FMT,file.filename=PATH[,encrypt.key-secret=ID|key-secret=ID]")
	f.StringVar(&g.crypto.keySecret, "key-secret", "",
		"the --object secret that unlocks the encrypted input image (same as encrypt.key-secret=ID with --image-opts)")
	root.PersistentPostRun = func(*cobra.Command, []string) { g.crypto.zero() }
}

// zero overwrites the secrets once the command is done.
func (c *cryptoFlags) zero() {
	for _, s := range c.secrets {
		clear(s)
	}
}

// parseSecrets turns the --object flags into secrets by id.
func (c *cryptoFlags) parseSecrets() (map[string][]byte, error) {
	if c.secrets != nil || len(c.objects) == 0 {
		return c.secrets, nil
	}
	c.secrets = map[string][]byte{}
	for _, obj := range c.objects {
		id, secret, err := parseSecretObject(obj)
		if err != nil {
			return nil, err
		}
		if _, dup := c.secrets[id]; dup {
			return nil, fmt.Errorf("--object: attempt to add duplicate property '%s'", id)
		}
		c.secrets[id] = secret
	}
	return c.secrets, nil
}

// parseSecretObject parses "secret,id=ID,data=...|file=...[,format=...]"
// (",," is a literal comma, as in qemu's option syntax). Errors never
// quote the secret.
func parseSecretObject(obj string) (string, []byte, error) {
	items := qemuopt.Split(obj)
	if len(items) == 0 || items[0] != "secret" && items[0] != "qom-type=secret" {
		typ, _, _ := strings.Cut(obj, ",")
		return "", nil, fmt.Errorf("--object %s: only secret objects are supported", typ)
	}
	var id, data, file, format string
	hasData := false
	for _, it := range items[1:] {
		k, v, _ := strings.Cut(it, "=")
		switch k {
		case "id":
			id = v
		case "data":
			data, hasData = v, true
		case "file":
			file = v
		case "format":
			format = v
		case "keyid", "iv":
			return "", nil, fmt.Errorf("--object secret: encrypted secrets (%s=) are not supported", k)
		default:
			return "", nil, fmt.Errorf("--object secret: unknown property '%s'", k)
		}
	}
	if id == "" {
		return "", nil, fmt.Errorf("--object secret: Parameter 'id' is missing")
	}
	var secret []byte
	switch {
	case hasData && file != "":
		return "", nil, fmt.Errorf("--object secret %s: 'data' and 'file' are mutually exclusive", id)
	case hasData:
		secret = []byte(data)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", nil, fmt.Errorf("--object secret %s: %w", id, err)
		}
		secret = b
	default:
		return "", nil, fmt.Errorf("--object secret %s: Either 'file' or 'data' must be provided", id)
	}
	switch format {
	case "", "raw":
	case "base64":
		dec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(secret)))
		clear(secret)
		if err != nil {
			return "", nil, fmt.Errorf("--object secret %s: data is not valid base64", id)
		}
		secret = dec
	default:
		return "", nil, fmt.Errorf("--object secret %s: format must be raw or base64, not %q", id, format)
	}
	return id, secret, nil
}

// applyKeys puts the secrets into opts and resolves an image name given
// with --image-opts; it returns the path to open.
func (g *globals) applyKeys(name string, opts *formats.OpenOptions) (string, error) {
	secrets, err := g.crypto.parseSecrets()
	if err != nil {
		return "", err
	}
	opts.Secrets = secrets
	keyID := g.crypto.keySecret
	path := name
	if g.crypto.imageOpts {
		path = ""
		for _, it := range qemuopt.Split(name) {
			k, v, ok := strings.Cut(it, "=")
			if !ok {
				return "", fmt.Errorf("--image-opts %q: expected key=value", it)
			}
			switch k {
			case "driver":
				opts.Format = v
			case "file.filename", "filename":
				path = v
			case "file.driver":
				if v != "file" {
					return "", fmt.Errorf("--image-opts: file.driver=%s is not supported (only file)", v)
				}
			case "encrypt.key-secret", "key-secret":
				keyID = v
			case "encrypt.format":
			default:
				return "", fmt.Errorf("--image-opts: option %q is not supported", k)
			}
		}
		if path == "" {
			return "", fmt.Errorf("--image-opts %q: no file.filename", name)
		}
	}
	if keyID != "" {
		key, ok := secrets[keyID]
		if !ok {
			return "", fmt.Errorf("%s: No secret with id '%s' found", path, keyID)
		}
		opts.Key = key
	}
	return path, nil
}

// imageName is the file an image argument names: itself, or with
// --image-opts its file.filename (info prints it where qemu-img prints a
// json: pseudo-name).
func (g *globals) imageName(arg string) string {
	if !g.crypto.imageOpts {
		return arg
	}
	for _, it := range qemuopt.Split(arg) {
		if k, v, _ := strings.Cut(it, "="); k == "file.filename" || k == "filename" {
			return v
		}
	}
	return arg
}
