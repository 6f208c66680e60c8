//go:build !linux

package main

import (
	"errors"
	"runtime"
)

// canDropCaches: only Linux's drop_caches is known to the benchmark.
func canDropCaches() error {
	return errors.New("-cold drops the page cache through Linux's /proc/sys/vm/drop_caches; not available on " + runtime.GOOS)
}

func dropCaches() error { return canDropCaches() }
