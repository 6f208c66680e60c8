package fileio

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// TestReadFullAndPadded: the two reads differ only at the end of the file:
// ReadFull refuses a short read, ReadPadded fills it with zeros; both pass
// other errors on.
func TestReadFullAndPadded(t *testing.T) {
	data := bytes.Repeat([]byte{7}, 100)
	r := bytes.NewReader(data)
	p := make([]byte, 50)
	if err := ReadFull(r, p, 50); err != nil || !bytes.Equal(p, data[50:]) {
		t.Errorf("ReadFull inside: %v", err)
	}
	if err := ReadFull(r, p, 80); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("ReadFull across the end: %v, want io.ErrUnexpectedEOF", err)
	}
	p = bytes.Repeat([]byte{9}, 50)
	if err := ReadPadded(r, p, 80); err != nil || !bytes.Equal(p, append(bytes.Repeat([]byte{7}, 20), make([]byte, 30)...)) {
		t.Errorf("ReadPadded across the end: %v, %v", err, p)
	}
	if err := ReadPadded(r, p, 500); err != nil || !bytes.Equal(p, make([]byte, 50)) {
		t.Errorf("ReadPadded past the end: %v", err)
	}
	bad := &Faulty{File: NewMem("m", data), FailReads: true, FailTo: 1 << 20, Err: errors.New("bad sector")}
	if err := ReadFull(bad, p, 0); err == nil || errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("ReadFull of a failing file: %v", err)
	}
	if err := ReadPadded(bad, p, 0); err == nil {
		t.Error("ReadPadded of a failing file succeeded")
	}
}
