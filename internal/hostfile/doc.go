// Package hostfile wraps the operating-system calls that writing through to
// a destination needs: a block device's size and read-only flag, zeroing a
// device range (discard that guarantees zeros, then BLKZEROOUT), keeping an
// existing file's owner, an exclusive lock that marks a temporary file as in
// use, and O_DIRECT. Each call is behind build tags; where the OS has no
// such call it returns ErrUnsupported and callers fall back (write zeros,
// buffered I/O) or refuse by name.
package hostfile

import "errors"

// ErrUnsupported: the OS or the file system has no such operation.
var ErrUnsupported = errors.New("not supported on this system")
