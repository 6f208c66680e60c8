package fuzzpatch

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func TestApply(t *testing.T) {
	bases := [][]byte{[]byte("aaaaaaaa"), []byte("bbbb")}
	rec := func(off uint64, data string) []byte {
		b := binary.AppendUvarint(nil, off)
		return append(append(b, byte(len(data))), data...)
	}
	for _, tc := range []struct {
		input []byte
		want  string
	}{
		{[]byte{0}, "aaaaaaaa"},
		{[]byte{3}, "bbbb"},
		{append([]byte{0}, rec(2, "XY")...), "aaXYaaaa"},
		{append(append([]byte{1}, rec(6, "Z")...), rec(0, "Q")...), "Qbbb\x00\x00Z"},
		{append([]byte{0}, rec(300, "")...), "aaaaaaaa"},
		{append([]byte{0}, rec(MaxBytes, "toolong")...), "aaaaaaaa"},
		{append([]byte{0}, 5, 9, 'c'), "aaaaacaa"}, // cut short: as far as it goes
	} {
		if got := Apply(bases, tc.input); string(got) != tc.want {
			t.Errorf("Apply(%q) = %q, want %q", tc.input, got, tc.want)
		}
	}
	// Bytes past MaxInputBytes are not read: a record straddling the
	// limit is cut there, one past it is ignored.
	long := append([]byte{0}, bytes.Repeat(rec(0, "q"), (MaxInputBytes-4)/3)...)
	long = append(long, rec(3, "ZZ")...) // its last byte is past the limit
	long = append(long, rec(5, "W")...)
	if got := Apply(bases, long); len(long) <= MaxInputBytes || string(got) != "qaaZaaaa" {
		t.Errorf("Apply(%d bytes) = %q, want %q", len(long), got, "qaaZaaaa")
	}
	if !bytes.Equal(bases[0], []byte("aaaaaaaa")) {
		t.Error("a base was modified")
	}
}
