//go:build linux

package main

import (
	"fmt"
	"os"
)

// dropCachesFile is where Linux takes the order to drop its clean caches.
const dropCachesFile = "/proc/sys/vm/drop_caches"

// canDropCaches says whether this process may drop the page cache, and
// why not: -cold refuses to run without it rather than time warm runs.
func canDropCaches() error {
	f, err := os.OpenFile(dropCachesFile, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("-cold needs to write %s (root, a writable /proc): %w", dropCachesFile, err)
	}
	return f.Close()
}

// dropCaches writes back dirty pages (sync) and drops the page cache,
// dentries and inodes (echo 3 > /proc/sys/vm/drop_caches): the next run
// reads its input from the disk.
func dropCaches() error {
	syncAll()
	if err := os.WriteFile(dropCachesFile, []byte("3\n"), 0); err != nil {
		return fmt.Errorf("dropping caches: %w", err)
	}
	return nil
}
