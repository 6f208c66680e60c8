package nbd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Magic numbers (proto.md "Handshake", "Transmission").
const (
	magicInit       = 0x4e42444d41474943 // "NBDMAGIC", the first 8 bytes the server sends
	magicOpt        = 0x49484156454F5054 // "IHAVEOPT": newstyle server magic and every option's magic
	magicOptReply   = 0x0003e889045565a9 // an option reply
	magicRequest    = 0x25609513         // NBD_REQUEST_MAGIC
	magicSimple     = 0x67446698         // NBD_SIMPLE_REPLY_MAGIC
	magicStructured = 0x668e33ef         // NBD_STRUCTURED_REPLY_MAGIC
)

// Handshake flags (server, 16 bits) and client flags (32 bits).
const (
	flagFixedNewstyle  = 1 << 0 // NBD_FLAG_FIXED_NEWSTYLE
	flagNoZeroes       = 1 << 1 // NBD_FLAG_NO_ZEROES
	flagCFixedNewstyle = 1 << 0 // NBD_FLAG_C_FIXED_NEWSTYLE
	flagCNoZeroes      = 1 << 1 // NBD_FLAG_C_NO_ZEROES
)

// Transmission flags: what an export supports (16 bits, in NBD_INFO_EXPORT).
const (
	FlagHasFlags        = 1 << 0  // NBD_FLAG_HAS_FLAGS, always set
	FlagReadOnly        = 1 << 1  // NBD_FLAG_READ_ONLY
	FlagSendFlush       = 1 << 2  // NBD_FLAG_SEND_FLUSH
	FlagSendFUA         = 1 << 3  // NBD_FLAG_SEND_FUA
	FlagRotational      = 1 << 4  // NBD_FLAG_ROTATIONAL
	FlagSendTrim        = 1 << 5  // NBD_FLAG_SEND_TRIM
	FlagSendWriteZeroes = 1 << 6  // NBD_FLAG_SEND_WRITE_ZEROES
	FlagSendDF          = 1 << 7  // NBD_FLAG_SEND_DF
	FlagCanMultiConn    = 1 << 8  // NBD_FLAG_CAN_MULTI_CONN
	FlagSendCache       = 1 << 10 // NBD_FLAG_SEND_CACHE
	FlagSendFastZero    = 1 << 11 // NBD_FLAG_SEND_FAST_ZERO
)

// Option types (client requests during the handshake).
const (
	optExportName      = 1  // NBD_OPT_EXPORT_NAME: pick an export, no error possible
	optAbort           = 2  // NBD_OPT_ABORT
	optList            = 3  // NBD_OPT_LIST
	optStartTLS        = 5  // NBD_OPT_STARTTLS
	optInfo            = 6  // NBD_OPT_INFO
	optGo              = 7  // NBD_OPT_GO
	optStructuredReply = 8  // NBD_OPT_STRUCTURED_REPLY
	optListMetaContext = 9  // NBD_OPT_LIST_META_CONTEXT
	optSetMetaContext  = 10 // NBD_OPT_SET_META_CONTEXT
)

// Option reply types; errors have bit 31 set.
const (
	repAck         = 1 // NBD_REP_ACK
	repServer      = 2 // NBD_REP_SERVER: one export of NBD_OPT_LIST
	repInfo        = 3 // NBD_REP_INFO
	repMetaContext = 4 // NBD_REP_META_CONTEXT

	repErrUnsup         = 1<<31 + 1 // NBD_REP_ERR_UNSUP
	repErrPolicy        = 1<<31 + 2 // NBD_REP_ERR_POLICY
	repErrInvalid       = 1<<31 + 3 // NBD_REP_ERR_INVALID
	repErrPlatform      = 1<<31 + 4 // NBD_REP_ERR_PLATFORM
	repErrTLSReqd       = 1<<31 + 5 // NBD_REP_ERR_TLS_REQD
	repErrUnknown       = 1<<31 + 6 // NBD_REP_ERR_UNKNOWN: no such export
	repErrShutdown      = 1<<31 + 7 // NBD_REP_ERR_SHUTDOWN
	repErrBlockSizeReqd = 1<<31 + 8 // NBD_REP_ERR_BLOCK_SIZE_REQD
	repErrTooBig        = 1<<31 + 9 // NBD_REP_ERR_TOO_BIG
)

// Information types of NBD_REP_INFO.
const (
	infoExport      = 0 // size (64) and transmission flags (16)
	infoName        = 1 // canonical export name
	infoDescription = 2 // human-readable description
	infoBlockSize   = 3 // minimum, preferred and maximum payload (32 each)
)

// Commands (request types).
const (
	cmdRead        = 0 // NBD_CMD_READ
	cmdWrite       = 1 // NBD_CMD_WRITE
	cmdDisc        = 2 // NBD_CMD_DISC: soft disconnect, no reply
	cmdFlush       = 3 // NBD_CMD_FLUSH
	cmdTrim        = 4 // NBD_CMD_TRIM
	cmdCache       = 5 // NBD_CMD_CACHE
	cmdWriteZeroes = 6 // NBD_CMD_WRITE_ZEROES
	cmdBlockStatus = 7 // NBD_CMD_BLOCK_STATUS
)

// Command flags.
const (
	cmdFlagFUA      = 1 << 0 // NBD_CMD_FLAG_FUA: persist before replying
	cmdFlagNoHole   = 1 << 1 // NBD_CMD_FLAG_NO_HOLE (WRITE_ZEROES): keep it allocated
	cmdFlagDF       = 1 << 2 // NBD_CMD_FLAG_DF (READ): one content chunk
	cmdFlagReqOne   = 1 << 3 // NBD_CMD_FLAG_REQ_ONE (BLOCK_STATUS): one extent
	cmdFlagFastZero = 1 << 4 // NBD_CMD_FLAG_FAST_ZERO (WRITE_ZEROES): fail with ENOTSUP unless fast
)

// Structured reply chunk types and flags.
const (
	replyFlagDone = 1 << 0 // NBD_REPLY_FLAG_DONE: last chunk of the reply

	replyNone        = 0         // NBD_REPLY_TYPE_NONE
	replyOffsetData  = 1         // NBD_REPLY_TYPE_OFFSET_DATA: offset (64) + data
	replyOffsetHole  = 2         // NBD_REPLY_TYPE_OFFSET_HOLE: offset (64) + size (32)
	replyBlockStatus = 5         // NBD_REPLY_TYPE_BLOCK_STATUS: context id + descriptors
	replyError       = 1<<15 + 1 // NBD_REPLY_TYPE_ERROR: error (32), message length (16), message
	replyErrorOffset = 1<<15 + 2 // NBD_REPLY_TYPE_ERROR_OFFSET: as ERROR, then offset (64)
)

// base:allocation status flags.
const (
	stateHole = 1 << 0 // NBD_STATE_HOLE: not allocated
	stateZero = 1 << 1 // NBD_STATE_ZERO: reads as zeros
)

// metaBaseAllocation is the one metadata context the protocol defines.
const metaBaseAllocation = "base:allocation"

// Error values of replies (proto.md "Error values").
const (
	errPerm      = 1   // NBD_EPERM
	errIO        = 5   // NBD_EIO
	errNoMem     = 12  // NBD_ENOMEM
	errInval     = 22  // NBD_EINVAL
	errNoSpc     = 28  // NBD_ENOSPC
	errOverflow  = 75  // NBD_EOVERFLOW
	errNotSup    = 95  // NBD_ENOTSUP
	errShutdown  = 108 // NBD_ESHUTDOWN
	maxStringLen = 4096
)

// Sizes of the fixed-length wire structures.
const (
	optHeaderLen      = 16 // magic (8), option (4), length (4)
	optReplyHeaderLen = 20 // magic (8), option (4), reply type (4), length (4)
	requestLen        = 28 // magic (4), flags (2), type (2), handle (8), offset (8), length (4)
	simpleReplyLen    = 16 // magic (4), error (4), handle (8)
	chunkHeaderLen    = 20 // magic (4), flags (2), type (2), handle (8), length (4)
)

// ErrProtocol is a violation of the NBD protocol by the other side: a wrong
// magic number, a malformed structure, a length beyond the limits.
var ErrProtocol = errors.New("nbd protocol error")

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// optionHeader starts every option the client sends.
//
//	offset 0  magic  IHAVEOPT
//	offset 8  option type
//	offset 12 length of the option data that follows
type optionHeader struct {
	Option uint32
	Length uint32
}

func parseOptionHeader(b []byte) (optionHeader, error) {
	if len(b) < optHeaderLen {
		return optionHeader{}, protoErr("option header of %d bytes", len(b))
	}
	if m := binary.BigEndian.Uint64(b); m != magicOpt {
		return optionHeader{}, protoErr("option magic %#x, want IHAVEOPT", m)
	}
	return optionHeader{Option: binary.BigEndian.Uint32(b[8:]), Length: binary.BigEndian.Uint32(b[12:])}, nil
}

func appendOption(dst []byte, option uint32, data []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, magicOpt)
	dst = binary.BigEndian.AppendUint32(dst, option)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(data)))
	return append(dst, data...)
}

// optionReply is the header of the server's answer to an option.
//
//	offset 0  magic 0x3e889045565a9
//	offset 8  the option answered
//	offset 12 reply type (repAck, repInfo, ... or an error with bit 31)
//	offset 16 length of the reply data that follows
type optionReply struct {
	Option uint32
	Type   uint32
	Length uint32
}

func parseOptionReply(b []byte) (optionReply, error) {
	if len(b) < optReplyHeaderLen {
		return optionReply{}, protoErr("option reply header of %d bytes", len(b))
	}
	if m := binary.BigEndian.Uint64(b); m != magicOptReply {
		return optionReply{}, protoErr("option reply magic %#x", m)
	}
	return optionReply{Option: binary.BigEndian.Uint32(b[8:]), Type: binary.BigEndian.Uint32(b[12:]),
		Length: binary.BigEndian.Uint32(b[16:])}, nil
}

func appendOptionReply(dst []byte, option, typ uint32, data []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, magicOptReply)
	dst = binary.BigEndian.AppendUint32(dst, option)
	dst = binary.BigEndian.AppendUint32(dst, typ)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(data)))
	return append(dst, data...)
}

// infoRequest is the data of NBD_OPT_INFO and NBD_OPT_GO:
//
//	offset 0     name length N (32)
//	offset 4     export name (N bytes)
//	offset 4+N   number of information requests K (16)
//	offset 6+N   K information types (16 each)
type infoRequest struct {
	Name  string
	Infos []uint16
}

func parseInfoRequest(data []byte) (infoRequest, error) {
	if len(data) < 6 {
		return infoRequest{}, protoErr("info request of %d bytes", len(data))
	}
	n := binary.BigEndian.Uint32(data)
	if uint64(n) > uint64(len(data)-6) || n > maxStringLen {
		return infoRequest{}, protoErr("export name length %d in a %d-byte info request", n, len(data))
	}
	req := infoRequest{Name: string(data[4 : 4+n])}
	rest := data[4+n:]
	k := int(binary.BigEndian.Uint16(rest))
	rest = rest[2:]
	if len(rest) != 2*k {
		return infoRequest{}, protoErr("%d information requests in %d bytes", k, len(rest))
	}
	for i := 0; i < k; i++ {
		req.Infos = append(req.Infos, binary.BigEndian.Uint16(rest[2*i:]))
	}
	return req, nil
}

func appendInfoRequest(dst []byte, name string, infos ...uint16) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(name)))
	dst = append(dst, name...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(infos)))
	for _, i := range infos {
		dst = binary.BigEndian.AppendUint16(dst, i)
	}
	return dst
}

// metaRequest is the data of NBD_OPT_LIST_META_CONTEXT and
// NBD_OPT_SET_META_CONTEXT:
//
//	offset 0     export name length N (32), then the name
//	offset 4+N   number of queries Q (32)
//	then Q times: query length L (32), then the query
type metaRequest struct {
	Name    string
	Queries []string
}

// maxMetaQueries bounds the queries of one meta-context option.
const maxMetaQueries = 128

func parseMetaRequest(data []byte) (metaRequest, error) {
	if len(data) < 8 {
		return metaRequest{}, protoErr("meta context request of %d bytes", len(data))
	}
	n := binary.BigEndian.Uint32(data)
	if uint64(n) > uint64(len(data)-8) || n > maxStringLen {
		return metaRequest{}, protoErr("export name length %d in a %d-byte meta context request", n, len(data))
	}
	req := metaRequest{Name: string(data[4 : 4+n])}
	rest := data[4+n:]
	q := binary.BigEndian.Uint32(rest)
	rest = rest[4:]
	if q > maxMetaQueries {
		return metaRequest{}, protoErr("%d meta context queries (limit %d)", q, maxMetaQueries)
	}
	for i := uint32(0); i < q; i++ {
		if len(rest) < 4 {
			return metaRequest{}, protoErr("meta context query %d: truncated", i)
		}
		l := binary.BigEndian.Uint32(rest)
		if uint64(l) > uint64(len(rest)-4) || l > maxStringLen {
			return metaRequest{}, protoErr("meta context query %d: length %d", i, l)
		}
		req.Queries = append(req.Queries, string(rest[4:4+l]))
		rest = rest[4+l:]
	}
	if len(rest) != 0 {
		return metaRequest{}, protoErr("%d bytes after the meta context queries", len(rest))
	}
	return req, nil
}

func appendMetaRequest(dst []byte, name string, queries ...string) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(name)))
	dst = append(dst, name...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(queries)))
	for _, q := range queries {
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(q)))
		dst = append(dst, q...)
	}
	return dst
}

// request is a transmission-phase command from the client.
//
//	offset 0  magic 0x25609513
//	offset 4  command flags (16)
//	offset 6  command type (16)
//	offset 8  handle (64), echoed in the reply
//	offset 16 offset (64)
//	offset 24 length (32); NBD_CMD_WRITE's data follows
type request struct {
	Flags  uint16
	Type   uint16
	Handle uint64
	Offset uint64
	Length uint32
}

func parseRequest(b []byte) (request, error) {
	if len(b) < requestLen {
		return request{}, protoErr("request of %d bytes", len(b))
	}
	if m := binary.BigEndian.Uint32(b); m != magicRequest {
		return request{}, protoErr("request magic %#x", m)
	}
	return request{
		Flags:  binary.BigEndian.Uint16(b[4:]),
		Type:   binary.BigEndian.Uint16(b[6:]),
		Handle: binary.BigEndian.Uint64(b[8:]),
		Offset: binary.BigEndian.Uint64(b[16:]),
		Length: binary.BigEndian.Uint32(b[24:]),
	}, nil
}

func (r request) append(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, magicRequest)
	dst = binary.BigEndian.AppendUint16(dst, r.Flags)
	dst = binary.BigEndian.AppendUint16(dst, r.Type)
	dst = binary.BigEndian.AppendUint64(dst, r.Handle)
	dst = binary.BigEndian.AppendUint64(dst, r.Offset)
	return binary.BigEndian.AppendUint32(dst, r.Length)
}

// appendSimpleReply: magic (32), error (32), handle (64); read data follows.
func appendSimpleReply(dst []byte, errno uint32, handle uint64) []byte {
	dst = binary.BigEndian.AppendUint32(dst, magicSimple)
	dst = binary.BigEndian.AppendUint32(dst, errno)
	return binary.BigEndian.AppendUint64(dst, handle)
}

// chunkHeader is a structured reply chunk's header.
//
//	offset 0  magic 0x668e33ef
//	offset 4  flags (16): replyFlagDone on the last chunk
//	offset 6  chunk type (16)
//	offset 8  handle (64)
//	offset 16 payload length (32)
type chunkHeader struct {
	Flags  uint16
	Type   uint16
	Handle uint64
	Length uint32
}

func appendChunkHeader(dst []byte, h chunkHeader) []byte {
	dst = binary.BigEndian.AppendUint32(dst, magicStructured)
	dst = binary.BigEndian.AppendUint16(dst, h.Flags)
	dst = binary.BigEndian.AppendUint16(dst, h.Type)
	dst = binary.BigEndian.AppendUint64(dst, h.Handle)
	return binary.BigEndian.AppendUint32(dst, h.Length)
}

// readFull reads exactly len(b) bytes.
func readFull(r io.Reader, b []byte) error {
	_, err := io.ReadFull(r, b)
	return err
}
