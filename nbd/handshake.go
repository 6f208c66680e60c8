package nbd

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"
)

// errAborted ends a handshake the client closed on purpose (NBD_OPT_ABORT).
var errAborted = errors.New("client aborted the handshake")

// session is a negotiated connection, ready for transmission.
type session struct {
	conn       net.Conn // the TLS connection after STARTTLS
	export     *Export
	structured bool
	// metaID is the base:allocation context id, 0 when not selected.
	metaID uint32
	flags  uint16
}

// negotiation is the handshake's state.
type negotiation struct {
	s          *Server
	conn       net.Conn
	tls        bool
	structured bool
	noZeroes   bool
	metaName   string // export the meta context was set for
	metaSet    bool
	options    int
}

// handshake runs the fixed newstyle negotiation under HandshakeTimeout.
// It returns the session, or an error after which the connection closes.
func (s *Server) handshake(conn net.Conn) (*session, error) {
	if err := conn.SetDeadline(time.Now().Add(positive(s.HandshakeTimeout, DefaultHandshakeTimeout))); err != nil {
		return nil, err
	}
	var hello []byte
	hello = binary.BigEndian.AppendUint64(hello, magicInit)
	hello = binary.BigEndian.AppendUint64(hello, magicOpt)
	hello = binary.BigEndian.AppendUint16(hello, flagFixedNewstyle|flagNoZeroes)
	if _, err := conn.Write(hello); err != nil {
		return nil, err
	}
	var cflags [4]byte
	if err := readFull(conn, cflags[:]); err != nil {
		return nil, err
	}
	clientFlags := binary.BigEndian.Uint32(cflags[:])
	if clientFlags&^(flagCFixedNewstyle|flagCNoZeroes) != 0 {
		return nil, protoErr("unknown client flags %#x", clientFlags)
	}
	n := &negotiation{s: s, conn: conn, noZeroes: clientFlags&flagCNoZeroes != 0}
	sess, err := n.options_()
	if sess == nil {
		return &session{conn: n.conn}, err
	}
	if err := n.conn.SetDeadline(time.Time{}); err != nil {
		return sess, err
	}
	return sess, nil
}

// options_ answers options until one enters transmission.
func (n *negotiation) options_() (*session, error) {
	maxOptions := positive(n.s.MaxOptions, DefaultMaxOptions)
	var hdr [optHeaderLen]byte
	for {
		if err := readFull(n.conn, hdr[:]); err != nil {
			return nil, err
		}
		opt, err := parseOptionHeader(hdr[:])
		if err != nil {
			return nil, err
		}
		if n.options++; n.options > maxOptions {
			return nil, protoErr("more than %d options", maxOptions)
		}
		if opt.Length > maxOptionData {
			return nil, protoErr("option %d with %d bytes of data (limit %d)", opt.Option, opt.Length, maxOptionData)
		}
		data := make([]byte, opt.Length)
		if err := readFull(n.conn, data); err != nil {
			return nil, err
		}
		sess, err := n.option(opt.Option, data)
		if sess != nil || err != nil {
			return sess, err
		}
	}
}

// option answers one option; a session means transmission starts.
func (n *negotiation) option(opt uint32, data []byte) (*session, error) {
	if n.s.TLSConfig != nil && !n.tls {
		switch opt {
		case optStartTLS, optAbort:
		case optExportName:
			return nil, protoErr("NBD_OPT_EXPORT_NAME before the TLS this server requires")
		default:
			return nil, n.reply(opt, repErrTLSReqd, []byte("TLS is required: send NBD_OPT_STARTTLS first"))
		}
	}
	switch opt {
	case optExportName:
		return n.exportName(data)
	case optAbort:
		n.reply(opt, repAck, nil)
		return nil, errAborted
	case optList:
		return nil, n.list(data)
	case optStartTLS:
		return nil, n.startTLS(data)
	case optInfo, optGo:
		return n.info(opt, data)
	case optStructuredReply:
		if len(data) != 0 {
			return nil, n.reply(opt, repErrInvalid, []byte("NBD_OPT_STRUCTURED_REPLY takes no data"))
		}
		n.structured = true
		return nil, n.reply(opt, repAck, nil)
	case optListMetaContext, optSetMetaContext:
		return nil, n.metaContext(opt, data)
	}
	return nil, n.reply(opt, repErrUnsup, fmt.Appendf(nil, "option %d is not supported", opt))
}

func (n *negotiation) reply(opt, typ uint32, data []byte) error {
	_, err := n.conn.Write(appendOptionReply(nil, opt, typ, data))
	return err
}

func (n *negotiation) exportName(data []byte) (*session, error) {
	e := n.s.export(string(data))
	if e == nil {
		return nil, protoErr("NBD_OPT_EXPORT_NAME: no export %q", data)
	}
	sess := n.session(e)
	var b []byte
	b = binary.BigEndian.AppendUint64(b, uint64(e.Image.Size()))
	b = binary.BigEndian.AppendUint16(b, sess.flags)
	if !n.noZeroes {
		b = append(b, make([]byte, 124)...)
	}
	if _, err := n.conn.Write(b); err != nil {
		return nil, err
	}
	return sess, nil
}

func (n *negotiation) session(e *Export) *session {
	sess := &session{conn: n.conn, export: e, structured: n.structured}
	if n.metaSet && n.metaName == e.Name && n.structured {
		sess.metaID = 1
	}
	sess.flags = e.transmissionFlags(n.structured)
	return sess
}

func (n *negotiation) list(data []byte) error {
	if len(data) != 0 {
		return n.reply(optList, repErrInvalid, []byte("NBD_OPT_LIST takes no data"))
	}
	for _, e := range n.s.Exports {
		var b []byte
		b = binary.BigEndian.AppendUint32(b, uint32(len(e.Name)))
		b = append(b, e.Name...)
		b = append(b, e.Description...)
		if err := n.reply(optList, repServer, b); err != nil {
			return err
		}
	}
	return n.reply(optList, repAck, nil)
}

func (n *negotiation) startTLS(data []byte) error {
	switch {
	case len(data) != 0:
		return n.reply(optStartTLS, repErrInvalid, []byte("NBD_OPT_STARTTLS takes no data"))
	case n.s.TLSConfig == nil:
		return n.reply(optStartTLS, repErrPolicy, []byte("this server has no TLS certificate"))
	case n.tls:
		return n.reply(optStartTLS, repErrInvalid, []byte("TLS is already running"))
	}
	if err := n.reply(optStartTLS, repAck, nil); err != nil {
		return err
	}
	tc := tls.Server(n.conn, n.s.TLSConfig)
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	// Nothing negotiated before TLS survives it (proto.md NBD_OPT_STARTTLS).
	n.conn, n.tls, n.structured, n.metaSet = tc, true, false, false
	return nil
}

func (n *negotiation) info(opt uint32, data []byte) (*session, error) {
	req, err := parseInfoRequest(data)
	if err != nil {
		return nil, n.reply(opt, repErrInvalid, []byte(err.Error()))
	}
	e := n.s.export(req.Name)
	if e == nil {
		return nil, n.reply(opt, repErrUnknown, fmt.Appendf(nil, "no export %q", req.Name))
	}
	sess := n.session(e)
	var b []byte
	b = binary.BigEndian.AppendUint16(b, infoExport)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Image.Size()))
	b = binary.BigEndian.AppendUint16(b, sess.flags)
	if err := n.reply(opt, repInfo, b); err != nil {
		return nil, err
	}
	for _, typ := range req.Infos {
		b = b[:0]
		switch typ {
		case infoName:
			b = binary.BigEndian.AppendUint16(b, infoName)
			b = append(b, e.Name...)
		case infoDescription:
			if e.Description == "" {
				continue
			}
			b = binary.BigEndian.AppendUint16(b, infoDescription)
			b = append(b, e.Description...)
		default:
			continue
		}
		if err := n.reply(opt, repInfo, b); err != nil {
			return nil, err
		}
	}
	// Block sizes are always sent: a client that did not ask may ignore them.
	minimum, preferred, maxPayload := e.blockSizes()
	b = binary.BigEndian.AppendUint16(b[:0], infoBlockSize)
	b = binary.BigEndian.AppendUint32(b, minimum)
	b = binary.BigEndian.AppendUint32(b, preferred)
	b = binary.BigEndian.AppendUint32(b, maxPayload)
	if err := n.reply(opt, repInfo, b); err != nil {
		return nil, err
	}
	if err := n.reply(opt, repAck, nil); err != nil {
		return nil, err
	}
	if opt == optGo {
		return sess, nil
	}
	return nil, nil
}

// metaContext answers LIST_META_CONTEXT and SET_META_CONTEXT: the one
// context is base:allocation (id 1 once selected).
func (n *negotiation) metaContext(opt uint32, data []byte) error {
	if opt == optSetMetaContext {
		n.metaSet = false // replaced even when the option fails
	}
	if !n.structured {
		return n.reply(opt, repErrInvalid, []byte("meta contexts need structured replies first"))
	}
	req, err := parseMetaRequest(data)
	if err != nil {
		return n.reply(opt, repErrInvalid, []byte(err.Error()))
	}
	if n.s.export(req.Name) == nil {
		return n.reply(opt, repErrUnknown, fmt.Appendf(nil, "no export %q", req.Name))
	}
	match := opt == optListMetaContext && len(req.Queries) == 0
	for _, q := range req.Queries {
		if q == metaBaseAllocation || (opt == optListMetaContext && q == "base:") {
			match = true
		}
	}
	if match {
		id := uint32(0)
		if opt == optSetMetaContext {
			id = 1
			n.metaSet, n.metaName = true, req.Name
		}
		b := binary.BigEndian.AppendUint32(nil, id)
		if err := n.reply(opt, repMetaContext, append(b, metaBaseAllocation...)); err != nil {
			return err
		}
	}
	return n.reply(opt, repAck, nil)
}
