// Package tlspltest helps test TLS-PL codecs.
package tlspltest

import (
	"bytes"
	"testing"
)

// Encoder is a decoded value that encodes itself again.
type Encoder interface{ Encode() ([]byte, error) }

// FuzzCanonical seeds f with seeds (plus a few tiny inputs) and fuzzes decode: it must never
// panic, and whatever decodes must re-encode to exactly the input (the encoding is canonical).
func FuzzCanonical[T Encoder](f *testing.F, seeds [][]byte, decode func([]byte) (T, error)) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte{0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decode(b)
		if err != nil {
			return
		}
		out, err := v.Encode()
		if err != nil {
			t.Fatalf("decoded value does not encode: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("re-encoding differs:\n in %x\nout %x", b, out)
		}
	})
}
