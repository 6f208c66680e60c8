//go:build !linux

package rescue

import (
	"fmt"
	"os"
	"runtime"

	"github.com/vdiskio/vdisk/formats"
)

// openDirect is refused where O_DIRECT does not exist (macOS has F_NOCACHE,
// Windows FILE_FLAG_NO_BUFFERING; neither is wired here yet).
func openDirect(path string) (*os.File, error) {
	return nil, fmt.Errorf("%s: %w: --direct (O_DIRECT) on %s", path, formats.ErrUnsupported, runtime.GOOS)
}
