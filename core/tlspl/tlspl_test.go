package tlspl

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"testing"
)

// TestDeserializationVectors runs the RFC 9420 deserialization.json vectors: every varint header
// decodes to its length and re-encodes to the same bytes.
func TestDeserializationVectors(t *testing.T) {
	raw, err := os.ReadFile("testdata/deserialization.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Header string `json:"vlbytes_header"`
		Length uint64 `json:"length"`
	}
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatal("no vectors")
	}
	for _, c := range cases {
		hdr, err := hex.DecodeString(c.Header)
		if err != nil {
			t.Fatal(err)
		}
		r := NewReader(hdr)
		if got := r.Varint(); got != c.Length {
			t.Errorf("header %s: got %d, want %d", c.Header, got, c.Length)
		}
		if err := r.Finish(); err != nil {
			t.Errorf("header %s: %v", c.Header, err)
		}
		var w Writer
		w.Varint(c.Length)
		out, err := w.Bytes()
		if err != nil || !bytes.Equal(out, hdr) {
			t.Errorf("length %d: encoded %x (%v), want %s", c.Length, out, err, c.Header)
		}
	}
}

func TestVarintRejects(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"empty", "", ErrShort},
		{"two-byte non-minimal", "4001", ErrVarintNotMinimal},
		{"four-byte non-minimal", "80000100", ErrVarintNotMinimal},
		{"eight-byte form", "c000000000000001", ErrVarintReserved},
		{"truncated two-byte", "40", ErrShort},
		{"truncated four-byte", "800000", ErrShort},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := hex.DecodeString(tc.in)
			r := NewReader(b)
			r.Varint()
			if !errors.Is(r.Err(), tc.want) {
				t.Fatalf("got %v, want %v", r.Err(), tc.want)
			}
		})
	}
}

func TestWriterVarintTooLarge(t *testing.T) {
	var w Writer
	w.Varint(MaxVarint + 1)
	if _, err := w.Bytes(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
}

type pair struct {
	A uint16
	B []byte
}

func (p *pair) MarshalTLS(w *Writer) { w.Uint16(p.A); w.Opaque(p.B) }
func (p *pair) UnmarshalTLS(r *Reader) {
	p.A = r.Uint16()
	p.B = r.OpaqueCopy()
}

type list struct {
	Items []pair
	Opt   *uint32
	Flag  bool
	Fixed []byte
}

func (l *list) MarshalTLS(w *Writer) {
	w.Vector(func(w *Writer) {
		for i := range l.Items {
			l.Items[i].MarshalTLS(w)
		}
	})
	w.Optional(l.Opt != nil, func(w *Writer) { w.Uint32(*l.Opt) })
	w.Bool(l.Flag)
	w.Raw(l.Fixed)
}

func (l *list) UnmarshalTLS(r *Reader) {
	r.ForEach(func(r *Reader) {
		var p pair
		p.UnmarshalTLS(r)
		l.Items = append(l.Items, p)
	})
	r.Optional(func(r *Reader) { v := r.Uint32(); l.Opt = &v })
	l.Flag = r.Bool()
	l.Fixed = r.Raw(4)
}

func TestRoundTrip(t *testing.T) {
	seven := uint32(7)
	big := bytes.Repeat([]byte{0xab}, 20000) // forces a 4-byte length prefix
	tests := []struct {
		name string
		in   list
	}{
		{"empty", list{Fixed: []byte{1, 2, 3, 4}}},
		{"small", list{Items: []pair{{1, []byte("a")}, {2, nil}}, Opt: &seven, Flag: true, Fixed: []byte{9, 9, 9, 9}}},
		{"two-byte prefix", list{Items: []pair{{3, bytes.Repeat([]byte{1}, 100)}}, Fixed: make([]byte, 4)}},
		{"four-byte prefix", list{Items: []pair{{4, big}}, Fixed: make([]byte, 4)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Marshal(&tc.in)
			if err != nil {
				t.Fatal(err)
			}
			var out list
			if err := Unmarshal(b, &out); err != nil {
				t.Fatal(err)
			}
			b2, err := Marshal(&out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, b2) {
				t.Fatalf("re-encoding differs")
			}
			if len(out.Items) != len(tc.in.Items) || (tc.in.Opt != nil) != (out.Opt != nil) || out.Flag != tc.in.Flag {
				t.Fatalf("decoded %+v, want %+v", out, tc.in)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"vector longer than input", "05000100", ErrShort},
		{"bad optional marker", "00020000000000", ErrInvalid},
		{"bad bool", "000002", ErrInvalid},
		{"trailing bytes", "00000000000000ff", ErrTrailing},
		{"element consuming past body", "0300010500000000000000", ErrShort},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, _ := hex.DecodeString(tc.in)
			var l list
			if err := Unmarshal(b, &l); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestJoinReportsTrailingBody(t *testing.T) {
	r := NewReader([]byte{0x02, 0x01, 0x02})
	sub := r.Vector()
	sub.Uint8()
	r.Join(sub)
	if !errors.Is(r.Err(), ErrTrailing) {
		t.Fatalf("got %v, want ErrTrailing", r.Err())
	}
}

// FuzzDecode checks that arbitrary input never panics and that whatever decodes re-encodes to the
// same bytes (the encoding is canonical).
func FuzzDecode(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0})
	f.Add([]byte{0x06, 0x00, 0x01, 0x01, 0x61, 0x00, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x07, 0x01, 1, 2, 3, 4})
	f.Add([]byte{0x40, 0x05, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		var l list
		if err := Unmarshal(b, &l); err != nil {
			return
		}
		out, err := Marshal(&l)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("not canonical: %x -> %x", b, out)
		}
	})
}

func BenchmarkVarintRoundTrip(b *testing.B) {
	var w Writer
	for b.Loop() {
		w.buf = w.buf[:0]
		w.Varint(1 << 20)
		r := NewReader(w.buf)
		_ = r.Varint()
	}
}
