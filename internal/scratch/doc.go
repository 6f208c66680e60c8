// Package scratch makes the temporary files vdisk works in (the spool of
// a decompressed source, the inner image of a cloud package), beside the
// output or in a directory the caller names. A scratch file is unlinked at
// creation where the OS allows it, so that it vanishes however the process
// ends; elsewhere (Windows, where an open file cannot be removed) its
// Close removes it.
package scratch
