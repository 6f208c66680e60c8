package formats

import (
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
)

// CheckName applies policy to ref, a name stored in the image named from,
// without touching any storage: names are slash-separated paths of a
// backend's namespace (an io/fs.FS, object keys, URL paths), resolved
// against path.Dir(from). It returns the name to open. Under PolicySafe the
// result must stay inside from's directory; PolicyLocal and PolicyAny allow
// any name of the namespace (a leading "/" is its root); PolicyStrict
// refuses every reference. Empty names, NUL bytes and protocol or json:
// names are always refused. Custom Resolvers use it to apply the same
// policy as DirResolver.
func CheckName(policy ReferencePolicy, from, ref string) (string, error) {
	switch {
	case ref == "":
		return "", denied(from, ref, "empty name", "")
	case policy == PolicyStrict:
		return "", denied(from, ref, "strict policy refuses every reference", ReferenceFlag+"=safe")
	case strings.ContainsRune(ref, 0):
		return "", denied(from, ref, "name contains NUL", "")
	case protocolName.MatchString(ref):
		return "", denied(from, ref, "protocol and json: names are never opened", "")
	}
	dir := path.Dir(from)
	if strings.HasPrefix(ref, "/") {
		if policy == PolicySafe {
			return "", denied(from, ref, "absolute path", ReferenceFlag+"=local")
		}
		return strings.TrimPrefix(path.Clean(ref), "/"), nil
	}
	name := path.Join(dir, ref)
	if policy == PolicySafe && !withinSlash(dir, name) {
		return "", denied(from, ref, "path leaves the image's directory", ReferenceFlag+"=local")
	}
	return name, nil
}

// withinSlash reports whether slash path name is dir or below it (both clean).
func withinSlash(dir, name string) bool {
	if dir == "." {
		return name != ".." && !strings.HasPrefix(name, "../")
	}
	return name == dir || strings.HasPrefix(name, dir+"/")
}

// FSResolver resolves references inside FS, under Policy (the zero value
// is the safe policy), so that an image opened from an fs.FS (OpenFS) finds
// its backing files in the same FS. Files must implement io.ReaderAt; they
// are opened read-only. Only regular files are opened.
type FSResolver struct {
	FS     fs.FS
	Policy ReferencePolicy
}

// Resolve checks ref with CheckName and fs.ValidPath.
func (r FSResolver) Resolve(from, ref string) (string, error) {
	name, err := CheckName(r.Policy, from, ref)
	if err != nil {
		return "", err
	}
	if !fs.ValidPath(name) {
		return "", denied(from, ref, "path leaves the file system", "")
	}
	return name, nil
}

// Open resolves ref and opens it read-only; writable is refused.
func (r FSResolver) Open(from, ref string, writable bool) (File, error) {
	name, err := r.Resolve(from, ref)
	if err != nil {
		return nil, err
	}
	if writable {
		return nil, fmt.Errorf("%s: reference %q: %w: files of an fs.FS are read-only", from, ref, ErrReadOnly)
	}
	return OpenFSFile(r.FS, name)
}

// OpenFSFile opens name in fsys as a read-only File. The fs.File must be a
// regular file implementing io.ReaderAt (os.DirFS, embed.FS, fstest.MapFS
// and most remote file systems do).
func OpenFSFile(fsys fs.FS, name string) (File, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: not a regular file", name)
	}
	ra, ok := f.(io.ReaderAt)
	if !ok {
		f.Close()
		return nil, fmt.Errorf("%s: %w: the fs.File (%T) has no ReadAt", name, ErrUnsupported, f)
	}
	return &readerAtFile{r: readerAtCloser{ra, f}, size: st.Size(), name: name}, nil
}

type readerAtCloser struct {
	io.ReaderAt
	io.Closer
}

// noResolver refuses references of an image opened from bytes that have no
// namespace (an io.ReaderAt): a name inside it means nothing locally.
type noResolver struct{}

func (noResolver) Resolve(from, ref string) (string, error) {
	return "", denied(from, ref, "the image was opened from an io.ReaderAt without OpenOptions.Resolver", "")
}

func (n noResolver) Open(from, ref string, writable bool) (File, error) {
	_, err := n.Resolve(from, ref)
	return nil, err
}

// PolicyName names the reference policy r applies: the policy of a
// DirResolver or FSResolver, or of any Resolver with a
// ReferencePolicy() ReferencePolicy method, or of the Resolver a wrapper's
// Unwrap() Resolver returns; "custom" for the others.
func PolicyName(r Resolver) string {
	switch r := r.(type) {
	case *DirResolver:
		return r.policy().String()
	case FSResolver:
		return r.Policy.String()
	case *FSResolver:
		return r.Policy.String()
	case interface{ ReferencePolicy() ReferencePolicy }:
		return r.ReferencePolicy().String()
	case interface{ Unwrap() Resolver }:
		return PolicyName(r.Unwrap())
	}
	return "custom"
}
