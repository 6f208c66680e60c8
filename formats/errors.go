package formats

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error a driver returns for a bad or unsupported image
// wraps one of these, so callers can test with errors.Is.
var (
	// ErrUnsupported: a valid image using a feature or subformat vdisk does not
	// implement. The message names the feature.
	ErrUnsupported = errors.New("unsupported")
	// ErrCorrupt: a structure of the image is inconsistent. The message names the
	// structure and its offset.
	ErrCorrupt = errors.New("corrupt image")
	// ErrReferenceDenied: the image names another file that the reference policy
	// refuses to open. The message names the reference and the flag allowing it.
	ErrReferenceDenied = errors.New("reference denied")
	// ErrFormatMismatch: the requested format disagrees with the content.
	ErrFormatMismatch = errors.New("format mismatch")
	// ErrReadOnly: a write to an image (or file) opened read-only, or to an image
	// that may only be read (a corrupt qcow2, a version-3 uncompressed VMDK).
	ErrReadOnly = errors.New("read-only")
	// ErrLimit: a value read from the image exceeds a safety limit (Limits).
	ErrLimit = errors.New("limit exceeded")
	// ErrUnknownFormat: no driver has the requested name.
	ErrUnknownFormat = errors.New("unknown format")
	// ErrSourceChanged: a file being read shrank (or vanished) since it was
	// opened; what it held is no longer there, so the read fails rather than
	// return zeros.
	ErrSourceChanged = errors.New("source changed")
	// ErrInvalidOption: a create option is unknown or has a bad value.
	ErrInvalidOption = errors.New("invalid option")
	// ErrKeyRequired: an encrypted image was opened for reading or writing
	// without its key (OpenOptions.Key).
	ErrKeyRequired = errors.New("key required")
	// ErrBadKey: the key given does not open an encrypted image. The message
	// names the image and how many key slots were tried, never the key.
	ErrBadKey = errors.New("wrong key")
)

// Error is a failure located in an image file: which file, which structure,
// at which byte offset. Kind is one of the sentinels above.
type Error struct {
	File      string // path of the image file, as the user named it
	Structure string // e.g. "L2 table", "footer", "grain directory"
	Offset    int64  // byte offset of the structure in File; -1 when not known
	Kind      error  // sentinel for errors.Is
	Msg       string // what is wrong
}

func (e *Error) Error() string {
	loc := e.File
	if e.Structure != "" {
		if loc != "" {
			loc += ": "
		}
		loc += e.Structure
		if e.Offset >= 0 {
			loc += fmt.Sprintf(" at offset %d", e.Offset)
		}
	}
	kind := ""
	if e.Kind != nil {
		kind = e.Kind.Error() + ": "
	}
	if loc == "" {
		return kind + e.Msg
	}
	return loc + ": " + kind + e.Msg
}

func (e *Error) Unwrap() error { return e.Kind }

// Corruptf returns an ErrCorrupt located at structure/offset of file.
func Corruptf(file, structure string, offset int64, format string, args ...any) error {
	return &Error{File: file, Structure: structure, Offset: offset, Kind: ErrCorrupt, Msg: fmt.Sprintf(format, args...)}
}

// Unsupportedf returns an ErrUnsupported naming the feature.
func Unsupportedf(file, format string, args ...any) error {
	return &Error{File: file, Offset: -1, Kind: ErrUnsupported, Msg: fmt.Sprintf(format, args...)}
}

// Limitf returns an ErrLimit located at structure/offset of file.
func Limitf(file, structure string, offset int64, format string, args ...any) error {
	return &Error{File: file, Structure: structure, Offset: offset, Kind: ErrLimit, Msg: fmt.Sprintf(format, args...)}
}
