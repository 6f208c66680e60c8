package nbd

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vdiskio/vdisk/formats"
)

// clientTranscript is what a well-behaved client sends after the greeting:
// flags, options (structured replies, meta context, list, info, go), then
// requests of every kind and a disconnect.
func clientTranscript() []byte {
	b := binary.BigEndian.AppendUint32(nil, flagCFixedNewstyle|flagCNoZeroes)
	b = appendOption(b, optStructuredReply, nil)
	b = appendOption(b, optList, nil)
	b = appendOption(b, optListMetaContext, appendMetaRequest(nil, "", "base:"))
	b = appendOption(b, optSetMetaContext, appendMetaRequest(nil, "", metaBaseAllocation))
	b = appendOption(b, optInfo, appendInfoRequest(nil, "", infoName, infoDescription, infoBlockSize))
	b = appendOption(b, optGo, appendInfoRequest(nil, "", infoBlockSize))
	b = request{Type: cmdRead, Handle: 1, Offset: 0, Length: 4096}.append(b)
	b = request{Type: cmdWrite, Handle: 2, Offset: 512, Length: 8}.append(b)
	b = append(b, "abcdefgh"...)
	b = request{Type: cmdBlockStatus, Handle: 3, Offset: 0, Length: 1 << 20}.append(b)
	b = request{Type: cmdWriteZeroes, Handle: 4, Flags: cmdFlagFastZero, Offset: 4096, Length: 65536}.append(b)
	b = request{Type: cmdTrim, Handle: 5, Offset: 0, Length: 4096}.append(b)
	b = request{Type: cmdFlush, Handle: 6}.append(b)
	b = request{Type: cmdRead, Handle: 7, Flags: cmdFlagDF, Offset: 1<<20 - 100, Length: 100}.append(b)
	return request{Type: cmdDisc}.append(b)
}

// FuzzServerSession feeds arbitrary client bytes (after the greeting) to a
// server on a writable 1 MiB memory image: options and requests must be
// answered or the connection closed, never a panic, a hang or unbounded
// memory.
func FuzzServerSession(f *testing.F) {
	good := clientTranscript()
	f.Add(good)
	f.Add(good[:40])
	f.Add(append(binary.BigEndian.AppendUint32(nil, flagCFixedNewstyle), appendOption(nil, optExportName, nil)...))
	f.Add(binary.BigEndian.AppendUint32(nil, 0xffffffff))
	bad := append([]byte(nil), good...)
	binary.BigEndian.PutUint32(bad[len(bad)-requestLen-requestLen+24:], 1<<31) // a huge read
	f.Add(bad)
	img, _ := memImage(f, 1<<20)
	f.Fuzz(func(t *testing.T, in []byte) {
		srv := &Server{Exports: []*Export{{Image: img, Writable: true, MaxPayload: 1 << 20}},
			HandshakeTimeout: time.Second, RequestTimeout: time.Second, InFlightBytes: 2 << 20}
		client, server := net.Pipe()
		go io.Copy(io.Discard, client)
		go func() {
			client.Write(in)
			client.Close()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.serveConn(ctx, server)
	})
}

// serverTranscript is what a well-behaved server sends a Client that reads
// 4 KiB at 0 and asks the block status of the first MiB.
func serverTranscript() []byte {
	var b []byte
	for _, part := range serverParts() {
		b = append(b, part...)
	}
	return b
}

// serverParts is serverTranscript cut into the handshake and the reply to
// each request.
func serverParts() [][]byte {
	var parts [][]byte
	b := binary.BigEndian.AppendUint64(nil, magicInit)
	b = binary.BigEndian.AppendUint64(b, magicOpt)
	b = binary.BigEndian.AppendUint16(b, flagFixedNewstyle|flagNoZeroes)
	b = appendOptionReply(b, optStructuredReply, repAck, nil)
	b = appendOptionReply(b, optSetMetaContext, repMetaContext, append(binary.BigEndian.AppendUint32(nil, 1), metaBaseAllocation...))
	b = appendOptionReply(b, optSetMetaContext, repAck, nil)
	info := binary.BigEndian.AppendUint16(nil, infoExport)
	info = binary.BigEndian.AppendUint64(info, 1<<20)
	info = binary.BigEndian.AppendUint16(info, FlagHasFlags|FlagReadOnly|FlagSendFlush)
	b = appendOptionReply(b, optGo, repInfo, info)
	bs := binary.BigEndian.AppendUint16(nil, infoBlockSize)
	bs = binary.BigEndian.AppendUint32(bs, 512)
	bs = binary.BigEndian.AppendUint32(bs, 4096)
	bs = binary.BigEndian.AppendUint32(bs, 1<<20)
	b = appendOptionReply(b, optGo, repInfo, bs)
	b = appendOptionReply(b, optGo, repAck, nil)
	parts, b = append(parts, b), nil
	// Handle 1: the read, as a data chunk and a hole chunk.
	data := binary.BigEndian.AppendUint64(nil, 0)
	data = append(data, make([]byte, 2048)...)
	b = appendChunkHeader(b, chunkHeader{Type: replyOffsetData, Handle: 1, Length: uint32(len(data))})
	b = append(b, data...)
	hole := binary.BigEndian.AppendUint64(nil, 2048)
	hole = binary.BigEndian.AppendUint32(hole, 2048)
	b = appendChunkHeader(b, chunkHeader{Type: replyOffsetHole, Handle: 1, Flags: replyFlagDone, Length: 12})
	b = append(b, hole...)
	parts, b = append(parts, b), nil
	// Handle 2: block status, two descriptors.
	st := binary.BigEndian.AppendUint32(nil, 1)
	st = binary.BigEndian.AppendUint32(st, 65536)
	st = binary.BigEndian.AppendUint32(st, 0)
	st = binary.BigEndian.AppendUint32(st, 2<<20) // the last may go past the request
	st = binary.BigEndian.AppendUint32(st, stateHole|stateZero)
	b = appendChunkHeader(b, chunkHeader{Type: replyBlockStatus, Handle: 2, Flags: replyFlagDone, Length: uint32(len(st))})
	b = append(b, st...)
	parts, b = append(parts, b), nil
	// Handle 3: an error chunk.
	e := binary.BigEndian.AppendUint32(nil, errIO)
	e = binary.BigEndian.AppendUint16(e, 4)
	e = append(e, "oops"...)
	b = appendChunkHeader(b, chunkHeader{Type: replyError, Handle: 3, Flags: replyFlagDone, Length: uint32(len(e))})
	return append(parts, append(b, e...))
}

// FuzzClientSession feeds arbitrary server bytes to a Client: the
// handshake, a read and a block status query must succeed or fail, never
// panic or hang.
func FuzzClientSession(f *testing.F) {
	good := serverTranscript()
	f.Add(good)
	f.Add(good[:30])
	bad := append([]byte(nil), good...)
	binary.BigEndian.PutUint32(bad[len(bad)-20:], 0xffffffff)
	f.Add(bad)
	f.Fuzz(func(t *testing.T, in []byte) {
		client, server := net.Pipe()
		go io.Copy(io.Discard, server)
		go func() {
			server.Write(in)
			server.Close()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := NewClient(ctx, client, "fuzz", "", DialOptions{})
		if err != nil {
			client.Close()
			return
		}
		buf := make([]byte, 4096)
		c.ReadAt(buf, 0)
		c.Extents(0, 1<<20)
		c.Sync()
		c.Close()
	})
}

// TestTranscriptsWork: the seed transcripts are real sessions (so the
// fuzzers start from valid input): the client accepts the server's, the
// server answers the client's until the disconnect.
func TestTranscriptsWork(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	parts := serverParts()
	// The client's handshake (flags, STRUCTURED_REPLY, SET_META_CONTEXT,
	// GO), then one signal per request: each reply goes after its request.
	handshake := 4 + optHeaderLen + optHeaderLen + len(appendMetaRequest(nil, "", metaBaseAllocation)) +
		optHeaderLen + len(appendInfoRequest(nil, "", infoBlockSize))
	requests := make(chan struct{}, 4)
	go func() {
		buf := make([]byte, handshake)
		if _, err := io.ReadFull(server, buf); err != nil {
			return
		}
		for {
			if _, err := io.ReadFull(server, buf[:requestLen]); err != nil {
				return
			}
			requests <- struct{}{}
		}
	}()
	go func() {
		server.Write(parts[0])
		for _, p := range parts[1:] {
			<-requests
			server.Write(p)
		}
	}()
	c, err := NewClient(context.Background(), client, "seed", "", DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 4096)
	if _, err := c.ReadAt(buf, 0); err != nil {
		t.Fatalf("read: %v", err)
	}
	exts, err := c.Extents(0, 1<<20)
	if err != nil || len(exts) != 2 || exts[1].Offset != 65536 || exts[1].End() != 1<<20 || exts[1].Kind != formats.Zero {
		t.Fatalf("extents %v, %v", exts, err)
	}
	if err := c.Sync(); err == nil || !strings.Contains(err.Error(), "oops") {
		t.Fatalf("flush answered by an error chunk: %v", err)
	}
}
