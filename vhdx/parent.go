package vhdx

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/vdiskio/vdisk/formats"
	"github.com/vdiskio/vdisk/internal/imageio"
)

// Differencing disks: the parent named by the locator, opened through the
// Resolver and checked against the linkage GUID.

// openParent opens the parent named by the locator and checks its linkage.
func (img *Image) openParent(ctx context.Context, opts formats.OpenOptions) error {
	linkage, err := parseGUID(img.locator.Values["parent_linkage"])
	if err != nil {
		return formats.Corruptf(img.name, "parent locator", img.metaOff, "parent_linkage: %v", err)
	}
	linkage2, _ := parseGUID(img.locator.Values["parent_linkage2"])
	var tried []error
	for _, loc := range img.parentLocs() {
		ref := loc.ref
		p, err := formats.OpenReference(ctx, img.name, ref, Name, opts)
		if err != nil {
			if imageio.StopTrying(err) {
				return err // a loop or a limit: no other locator helps
			}
			tried = append(tried, fmt.Errorf("%s %q: %w", loc.key, ref, err))
			continue
		}
		parent, ok := p.(*Image)
		if !ok {
			p.Close()
			return formats.Unsupportedf(img.name, "parent %q is not a VHDX image", ref)
		}
		if dw := parent.hdr.DataWriteGUID; dw != linkage && (linkage2.isZero() || dw != linkage2) {
			p.Close()
			return formats.Corruptf(img.name, "parent locator", img.metaOff,
				"parent %q has DataWriteGuid %v but this disk links to %v (the parent changed since this disk was made)", ref, dw, linkage)
		}
		img.parent, img.parentRef = parent, ref
		img.parentPath, _ = opts.References().Resolve(img.name, ref)
		return nil
	}
	if len(tried) == 0 {
		return formats.Corruptf(img.name, "parent locator", img.metaOff, "no relative_path, absolute_win32_path or volume_path entry")
	}
	return &parentError{name: img.name, policy: policyName(opts), tried: tried}
}

// parentError says why no locator opened the parent: each locator tried,
// with its error, and the reference policy in force. It wraps each error
// (errors.Is finds ErrReferenceDenied).
type parentError struct {
	name, policy string
	tried        []error
}

func (e *parentError) Error() string {
	msgs := make([]string, len(e.tried))
	for i, err := range e.tried {
		msgs[i] = err.Error()
	}
	return fmt.Sprintf("%s: cannot open the parent of the differencing disk under the %s reference policy; locators tried: %s",
		e.name, e.policy, strings.Join(msgs, "; "))
}

func (e *parentError) Unwrap() []error { return e.tried }

// policyName names the reference policy opts open references under.
func policyName(opts formats.OpenOptions) string {
	return formats.PolicyName(opts.References())
}

// parentLoc is one path of the parent locator: its key and the name to
// open.
type parentLoc struct{ key, ref string }

// parentLocs lists the locator's paths in the order to try, converted to
// slash-separated names: relative_path, then absolute_win32_path and
// volume_path (which only a wider --references policy lets through).
func (img *Image) parentLocs() []parentLoc {
	var locs []parentLoc
	if rel := img.locator.Values["relative_path"]; rel != "" {
		locs = append(locs, parentLoc{"relative_path", winToSlash(rel)})
	}
	for _, key := range []string{"absolute_win32_path", "volume_path"} {
		if abs := img.locator.Values[key]; abs != "" {
			locs = append(locs, parentLoc{key, winAbsToSlash(abs)})
		}
	}
	return locs
}

// parentRefs lists the names of parentLocs.
func (img *Image) parentRefs() []string {
	var refs []string
	for _, l := range img.parentLocs() {
		refs = append(refs, l.ref)
	}
	return refs
}

// winToSlash turns a Windows relative path ("..\dir\p.vhdx", ".\p.vhdx")
// into a slash-separated one.
func winToSlash(p string) string { return filepath.FromSlash(strings.ReplaceAll(p, `\`, "/")) }

// winAbsToSlash turns "\\?\C:\dir\p.vhdx" or "C:\dir\p.vhdx" into the
// absolute "/dir/p.vhdx": an absolute path, which the safe reference policy
// refuses and --references=any opens as it stands on this machine.
func winAbsToSlash(p string) string {
	p = strings.TrimPrefix(p, `\\?\`)
	if len(p) >= 2 && p[1] == ':' {
		p = p[2:]
	}
	p = strings.ReplaceAll(p, `\`, "/")
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return filepath.FromSlash(p)
}

// Backing is the open parent, or nil.
func (img *Image) Backing() formats.Image {
	if img.parent == nil {
		return nil // a nil *Image must not become a non-nil interface
	}
	return img.parent
}

// BackingName is the locator path used to open the parent ("" if none).
// A relative path as Hyper-V writes it (".\\base.vhdx") is shown without
// its "./".
func (img *Image) BackingName() string {
	if img.parentRef != "" {
		return strings.TrimPrefix(img.parentRef, "./")
	}
	if img.hasParent {
		if refs := img.parentRefs(); len(refs) > 0 {
			return strings.TrimPrefix(refs[0], "./")
		}
	}
	return ""
}

// BackingPath is the parent's resolved path.
func (img *Image) BackingPath() string { return img.parentPath }

// BackingFormat is "vhdx" for a differencing disk.
func (img *Image) BackingFormat() string {
	if img.hasParent {
		return Name
	}
	return ""
}
