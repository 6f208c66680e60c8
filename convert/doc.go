// Package convert copies one image into another, the engine behind
// `vdisk convert`.
//
// Copy plans from the source's extents: ranges that are zero or unallocated
// are never read; they become holes or zero clusters in the target, or
// nothing when the target already reads as zeros. Data ranges are cut into
// chunks (2 MiB by default, aligned to the target's cluster) that a pool of
// workers reads in parallel and scans for zero runs at the sparse granularity
// (-S, 4 KiB by default). The pool has as many workers as asked (-m, up to
// MaxWorkers), or 8 but no more than the CPUs by default. Random-access
// targets may take writes out of order (-W), from every worker at once when
// the target is a formats.ConcurrentWriter (raw) and one at a time
// otherwise; and always for sequential targets (a streamOptimized VMDK, a
// pipe) and compressed output, a single committer writes results in offset
// order while the workers read, scan and compress ahead. Memory is a fixed
// number of chunk buffers, whatever the image size.
//
// Run wraps Copy for files: it opens the source, creates the target in a
// temporary file next to the destination and renames it into place only when
// complete, so a failed or interrupted conversion leaves nothing at the
// destination path (and an existing destination untouched).
package convert
