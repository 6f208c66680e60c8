//go:build !linux

package mapfile

import "os"

// Map maps nothing outside Linux: the caller reads.
func Map(f *os.File, off, length int64) (*Mapping, bool) { return nil, false }

// Close does nothing: nothing was mapped.
func (m *Mapping) Close() error { return nil }

// IsFault: nothing is mapped outside Linux.
func IsFault(err error) bool { return false }
