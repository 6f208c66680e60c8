//go:build !linux && !darwin && !freebsd && !windows

package sparse

// Native is the portable Fallback on this OS.
func Native() Ops { return portable{} }
