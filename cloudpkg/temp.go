package cloudpkg

import "github.com/vdiskio/vdisk/internal/scratch"

// kept is the temporary file (a scratch file beside the output) as the
// inner image writer sees it: its Close leaves the file open for the
// packaging that follows.
type kept struct{ *scratch.File }

func (kept) Close() error { return nil }
