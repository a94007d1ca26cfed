package main

import (
	"bytes"
	"compress/lzw"
	"encoding/binary"
	"reflect"
	"testing"
)

// TestSplit: a compound packet splits into its messages, a user message is named by
// rumor's type, and a compressed packet (memberlist's msgpack map {Algo, Buf} of LZW
// data) is read through.
func TestSplit(t *testing.T) {
	ping := []byte{0, 1, 2, 3}
	eager := []byte{8, 9, 'x', 'y'}
	compound := []byte{7, 2}
	compound = binary.BigEndian.AppendUint16(compound, uint16(len(ping)))
	compound = binary.BigEndian.AppendUint16(compound, uint16(len(eager)))
	compound = append(append(compound, ping...), eager...)
	want := []part{{"udp compound header", 6}, {"udp ping", 4}, {"udp user eager", 4}}
	if got := split(compound, "udp "); !reflect.DeepEqual(got, want) {
		t.Errorf("compound: got %v, want %v", got, want)
	}

	var lz bytes.Buffer
	w := lzw.NewWriter(&lz, lzw.LSB, 8)
	if _, err := w.Write(compound); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	packed := append([]byte{9, 0x82, 0xa4}, "Algo"...)
	packed = append(append(packed, 0, 0xa3), "Buf"...)
	packed = append(append(packed, 0xc4, byte(lz.Len())), lz.Bytes()...)
	crc := append([]byte{12, 0, 0, 0, 0}, packed...)
	if got := split(crc, "udp "); !reflect.DeepEqual(got, want) {
		t.Errorf("compressed behind a CRC: got %v, want %v", got, want)
	}
	if got := split([]byte{9, 1, 2}, "tcp "); len(got) != 1 || got[0].kind != "tcp compress (undecoded)" {
		t.Errorf("bad compressed: got %v", got)
	}
}
