// Package rescue images a failing disk (or any file that returns read
// errors) around its bad sectors, in the manner of GNU ddrescue, into an
// image of any writable format, keeping a ddrescue-compatible mapfile so an
// interrupted rescue resumes without reading good areas again.
//
// The rescue runs in phases, each working only on the blocks whose status
// says it is their turn, which is what makes resuming free:
//
//	copy   '?' non-tried: read in clusters (64 KiB); on an error the cluster
//	       becomes '*' and the next reads skip ahead (the skip doubling while
//	       errors continue), so a bad area costs few slow reads; a second
//	       pass then reads what was skipped, without skipping
//	trim   '*' non-trimmed: read sector by sector from each edge of a failed
//	       cluster inwards until a bad sector ('-'); the middle becomes '/'
//	scrape '/' non-scraped: read every remaining sector once
//	retry  '-' bad-sector: read each bad sector again, Retries passes,
//	       alternating direction
//
// Good data is written to the output as it is read ('+' finished); what
// stays unreadable is left as zeros in the output (or a chosen fill byte)
// and listed by Map.Bad. The source is only read: it is opened read-only and
// never locked.
//
// The mapfile is GNU ddrescue's text format (ddrescue manual, "Mapfile
// structure"): comment lines starting with '#', a status line "current_pos
// current_status current_pass", then "pos size status" lines for contiguous
// blocks, numbers in C syntax (0x hexadecimal, 0 octal or decimal). Status
// characters are '?' '*' '/' '-' '+' for blocks and '?' '*' '/' '-' 'F' 'G'
// '+' for the status line. ddrescuelog reads what Map.WriteTo writes, and
// ParseMap reads ddrescue's own mapfiles, so a rescue started by ddrescue
// can be finished by vdisk and the other way round.
package rescue
