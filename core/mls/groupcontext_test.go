package mls

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

func TestGroupContextRoundTrip(t *testing.T) {
	t.Parallel()
	gc := GroupContext{
		Version:                 ProtocolVersionMLS10,
		CipherSuite:             MLS256DHKEMP384AES256GCMSHA384P384,
		GroupID:                 []byte("group"),
		Epoch:                   1 << 40,
		TreeHash:                bytes.Repeat([]byte{1}, 48),
		ConfirmedTranscriptHash: bytes.Repeat([]byte{2}, 48),
		Extensions: Extensions{
			{Type: ExtensionRequiredCapabilities, Data: []byte{0, 0, 0}},
			{Type: 0xff00, Data: bytes.Repeat([]byte{3}, 100)},
		},
	}
	b, err := gc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalGroupContext(b)
	if err != nil {
		t.Fatal(err)
	}
	again, err := back.Marshal()
	if err != nil || !bytes.Equal(again, b) {
		t.Fatalf("round trip: %x vs %x (%v)", again, b, err)
	}
	if d, ok := back.Extensions.Find(0xff00); !ok || len(d) != 100 {
		t.Errorf("Find(0xff00) = %d bytes, %v", len(d), ok)
	}
	if _, ok := back.Extensions.Find(ExtensionExternalPub); ok {
		t.Error("Find of an absent extension succeeded")
	}
	// Decoded byte fields must not alias the input.
	b[len(b)-1] ^= 0xff
	if back.Extensions[1].Data[99] != 3 {
		t.Error("decoded extension data aliases the input")
	}
}

func TestGroupContextDecodeErrors(t *testing.T) {
	t.Parallel()
	good, _ := (&GroupContext{Version: 1, CipherSuite: 1, GroupID: []byte{1}}).Marshal()
	dup := Extensions{{Type: 5}, {Type: 5}}
	var w tlspl.Writer
	dup.MarshalTLS(&w)
	dupBytes, _ := w.Bytes()
	cases := map[string][]byte{
		"empty":                nil,
		"truncated":            good[:len(good)-1],
		"trailing":             append(append([]byte{}, good...), 0),
		"duplicate extensions": append(append([]byte{}, good[:len(good)-1]...), dupBytes...),
	}
	for name, b := range cases {
		if _, err := UnmarshalGroupContext(b); err == nil {
			t.Errorf("%s: decoded", name)
		} else if name == "duplicate extensions" && !errors.Is(err, ErrDuplicateExtension) {
			t.Errorf("%s: %v, want ErrDuplicateExtension", name, err)
		}
	}
}

func TestExtensionsLimit(t *testing.T) {
	t.Parallel()
	var w tlspl.Writer
	w.Vector(func(w *tlspl.Writer) {
		for i := range maxExtensions + 1 {
			w.Uint16(uint16(i))
			w.Opaque(nil)
		}
	})
	b, _ := w.Bytes()
	var es Extensions
	if err := tlspl.Unmarshal(b, &es); !errors.Is(err, tlspl.ErrTooLarge) {
		t.Fatalf("%d extensions: %v, want ErrTooLarge", maxExtensions+1, err)
	}
}

// groupContextSeeds returns the GroupContexts of key-schedule.json as fuzz seeds.
func groupContextSeeds(f *testing.F) [][]byte {
	raw, err := os.ReadFile("testdata/key-schedule.json")
	if err != nil {
		f.Fatal(err)
	}
	var cases []keyScheduleCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		f.Fatal(err)
	}
	var out [][]byte
	for _, c := range cases {
		for _, ep := range c.Epochs {
			out = append(out, ep.GroupContext)
		}
	}
	return out
}

// FuzzGroupContext decodes arbitrary bytes as a GroupContext: decoding must not panic, and whatever
// decodes must re-encode to the same bytes (the encoding is canonical).
func FuzzGroupContext(f *testing.F) {
	for _, s := range groupContextSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		gc, err := UnmarshalGroupContext(b)
		if err != nil {
			return
		}
		again, err := gc.Marshal()
		if err != nil {
			t.Fatalf("re-encoding: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("not canonical:\n in  %x\n out %x", b, again)
		}
	})
}

// FuzzExtensions is FuzzGroupContext for an extension list on its own.
func FuzzExtensions(f *testing.F) {
	f.Add([]byte{0})
	f.Add([]byte{4, 0, 1, 1, 7})
	f.Add([]byte{8, 0, 1, 0, 0, 2, 1, 9})
	f.Fuzz(func(t *testing.T, b []byte) {
		var es Extensions
		if err := tlspl.Unmarshal(b, &es); err != nil {
			return
		}
		if err := es.checkDuplicates(); err != nil {
			t.Fatalf("decoded list has duplicates: %v", err)
		}
		again, err := tlspl.Marshal(es)
		if err != nil {
			t.Fatalf("re-encoding: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("not canonical:\n in  %x\n out %x", b, again)
		}
	})
}
