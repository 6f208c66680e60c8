// Package nbd serves disk images over the Network Block Device protocol and
// reads remote exports as files.
//
// NBD (the protocol doc/proto.md of the NetworkBlockDevice project) moves a
// range of bytes over a stream socket (TCP, port 10809, or a unix socket).
// A connection has two phases:
//
//   - Handshake ("fixed newstyle"): the server greets with NBDMAGIC,
//     IHAVEOPT and its flags; the client answers with its flags, then sends
//     options, each IHAVEOPT + type + length + data, and the server answers
//     each with one or more replies (magic 0x3e889045565a9, option, type,
//     length, data). NBD_OPT_LIST lists exports, NBD_OPT_INFO describes one
//     (NBD_INFO_EXPORT: size and transmission flags; NBD_INFO_BLOCK_SIZE:
//     minimum, preferred and maximum request sizes), NBD_OPT_STRUCTURED_REPLY
//     enables chunked replies, NBD_OPT_SET_META_CONTEXT selects
//     "base:allocation" block status, NBD_OPT_STARTTLS upgrades to TLS, and
//     NBD_OPT_GO (or the older NBD_OPT_EXPORT_NAME) picks the export and
//     starts transmission.
//   - Transmission: requests (magic 0x25609513, flags, type, handle, offset,
//     length; a WRITE's data follows) answered, possibly out of order, by
//     simple replies (magic 0x67446698, error, handle, READ data) or
//     structured reply chunks (magic 0x668e33ef, flags, type, handle, length:
//     OFFSET_DATA, OFFSET_HOLE, BLOCK_STATUS, ERROR, ERROR_OFFSET, NONE; the
//     last has NBD_REPLY_FLAG_DONE). Commands are READ, WRITE, DISC, FLUSH,
//     TRIM, CACHE, WRITE_ZEROES (flags NO_HOLE and FAST_ZERO) and
//     BLOCK_STATUS, whose base:allocation descriptors carry NBD_STATE_HOLE
//     and NBD_STATE_ZERO for each run of the range.
//
// Server exports formats.Image values: every format vdisk reads, backing
// chains included, read-only (with multi-conn: all connections see the same
// bytes) or, for formats vdisk writes, writable. Block status comes from the
// image's extents through its chain: data is status 0; zero clusters, holes
// and unallocated ranges are HOLE|ZERO. Reads of 64 KiB or more of such
// ranges are answered with hole chunks and not read. A server bounds each
// connection: the handshake's duration and option count, one option's size,
// the payload bytes and requests in flight, the time to transfer one
// request or reply; a client breaking the protocol (bad magic, unknown
// flags, an oversized write) is disconnected, a request out of range or too
// large is answered with an error.
//
// Client is a formats.File over an export (nbd://host:port/export,
// nbd+unix:///export?socket=PATH, nbds:// for TLS; see ParseURL): ReadAt and
// WriteAt are split into requests of at most the server's maximum payload and
// pipelined on the one connection; unaligned requests are widened to the
// server's minimum block. Its FileExtents (block status) and ZeroRange
// (WRITE_ZEROES, fileio.RangeZeroer) let the raw driver on top convert sparsely and zero without
// sending zeros. Oldstyle negotiation and the experimental extended headers
// are not supported.
package nbd
