package remote

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/vdiskio/vdisk/formats"
)

// Resolver opens the references of images, remote ones included: a
// reference named by a remote image (one whose name is an http(s) URL)
// or naming a URL is allowed only under formats.PolicyAny (or, for a URL
// the user gave on the command line, under every policy but strict). Under
// PolicyAny a relative reference of a remote image resolves next to its
// URL (RFC 3986 reference resolution; the naming URL's query is not
// carried over). Everything else goes to Next.
type Resolver struct {
	Next      formats.Resolver
	Policy    formats.ReferencePolicy
	UserNamed []string
	// OpenURL opens a URL reference (the CLI's: through its spooler).
	OpenURL func(name string, writable bool) (formats.File, error)
}

// Unwrap is the resolver for local references (formats.PolicyName).
func (r *Resolver) Unwrap() formats.Resolver { return r.Next }

func (r *Resolver) remote(from, ref string) bool { return IsHTTP(from) || IsURL(ref) }

// Resolve checks ref, named by the image from, and returns what Open
// opens.
func (r *Resolver) Resolve(from, ref string) (string, error) {
	if !r.remote(from, ref) {
		return r.Next.Resolve(from, ref)
	}
	userNamed := r.Policy != formats.PolicyStrict && slices.Contains(r.UserNamed, ref)
	if r.Policy != formats.PolicyAny && !userNamed {
		why := "a URL named inside an image"
		if IsHTTP(from) {
			why = "a reference named by a remote image"
		}
		return "", &formats.Error{File: Redact(from), Offset: -1, Kind: formats.ErrReferenceDenied,
			Msg: fmt.Sprintf("reference %q named by %s: %s is followed only with %s=any", Redact(ref), Redact(from), why, formats.ReferenceFlag)}
	}
	if IsURL(ref) {
		return ref, nil
	}
	if !IsHTTP(from) {
		return r.Next.Resolve(from, ref)
	}
	return nextTo(from, ref)
}

// nextTo resolves a relative name against the URL of the naming image.
func nextTo(from, ref string) (string, error) {
	base, err := url.Parse(from)
	if err != nil {
		return "", fmt.Errorf("%s: %w: the URL does not parse", Redact(from), formats.ErrInvalidOption)
	}
	base.RawQuery, base.Fragment = "", ""
	if strings.ContainsAny(ref, "?#\x00") || strings.HasPrefix(ref, "//") {
		return "", &formats.Error{File: Redact(from), Offset: -1, Kind: formats.ErrReferenceDenied,
			Msg: fmt.Sprintf("reference %q named by %s: not a plain relative path", Redact(ref), Redact(from))}
	}
	return base.ResolveReference(&url.URL{Path: ref}).String(), nil
}

// Open resolves ref and opens it.
func (r *Resolver) Open(from, ref string, writable bool) (formats.File, error) {
	name, err := r.Resolve(from, ref)
	if err != nil {
		return nil, err
	}
	if !r.remote(from, ref) || !IsURL(name) {
		return r.Next.Open(from, ref, writable)
	}
	if r.OpenURL == nil {
		return nil, fmt.Errorf("%s: %w: no opener for URLs", Redact(name), formats.ErrUnsupported)
	}
	return r.OpenURL(name, writable)
}
