//go:build !linux

package main

import (
	"errors"
	"runtime"
)

// raisePriority: -priority relies on Linux's autogroups.
func raisePriority() error {
	return errors.New("-priority uses Linux's autogroup nice; not available on " + runtime.GOOS)
}
