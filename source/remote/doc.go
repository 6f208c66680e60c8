// Package remote opens disk images named by URL: `https://` and `http://`
// through HTTP range requests, `file://` as the local file it names.
//
// An HTTP source is a formats.File read in chunks (1 MiB by default), each
// one a `Range: bytes=START-END` GET. The first request (bytes 0 to the
// first chunk's end) tells what the server can do:
//
//	206 Partial Content   random access: Content-Range "bytes S-E/TOTAL"
//	                      gives the size; every later chunk is a range
//	200 OK                the server ignores Range: the body is the whole
//	                      object, read once as a stream (the caller spools
//	                      it when the image inside needs random access)
//	416                   "bytes */0": an empty object
//
// A GET is used and not HEAD, because a presigned object-storage URL is
// signed for one method. Every 206 is checked: Content-Range must name
// the range asked for and the same total as the first answer (an object
// that changes while read is an error), and Content-Length, when given,
// must be the range's length. Chunks are fetched in parallel (the chunk
// read and the next ones ahead, at most Options.Connections requests at a
// time) into a cache bounded by Options.CacheBytes.
//
// Failures are retried with exponential backoff: connection errors, 5xx
// answers, 429, and a body that ends early; a transfer that broke
// mid-chunk resumes with a Range from the first byte not yet received.
// Only attempts that make no progress count against Options.Retries.
// Redirects are followed, at most Options.MaxRedirects of them.
//
// A URL's query string (a presigned URL's signature) and user information
// are sent as given but never shown: Name and every error carry the URL
// with them replaced by "REDACTED" (Redact).
//
// References inside a remote image (a qcow2 backing file, VMDK extents)
// are opened through Resolver: under --references=any a relative name
// resolves next to the URL and a URL is followed; under every other
// policy a remote image may name nothing, and a URL named inside a local
// image is refused.
package remote
