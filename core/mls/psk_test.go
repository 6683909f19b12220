package mls

import (
	"bytes"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

func init() { vectorLayouts["psk_secret.json"] = testPSKSecretVectors }

type pskSecretCase struct {
	suiteField
	PSKs []struct {
		PSKID    hexBytes `json:"psk_id"`
		PSK      hexBytes `json:"psk"`
		PSKNonce hexBytes `json:"psk_nonce"`
	} `json:"psks"`
	PSKSecret hexBytes `json:"psk_secret"`
}

func testPSKSecretVectors(t *testing.T, raw []byte) {
	runCases(t, raw, func(t *testing.T, s *suite, c *pskSecretCase) {
		in := make([]pskInput, len(c.PSKs))
		for i, p := range c.PSKs {
			in[i] = pskInput{id: PreSharedKeyID{PSKType: PSKTypeExternal, PSKID: p.PSKID, PSKNonce: p.PSKNonce}, psk: p.PSK}
		}
		got, err := s.pskSecret(in)
		if err != nil {
			t.Fatal(err)
		}
		equalHex(t, "psk_secret", got, c.PSKSecret)
	})
}

func TestPreSharedKeyIDRoundTrip(t *testing.T) {
	t.Parallel()
	for _, id := range []PreSharedKeyID{
		{PSKType: PSKTypeExternal, PSKID: []byte("ext"), PSKNonce: []byte{1, 2, 3}},
		{PSKType: PSKTypeResumption, Usage: ResumptionPSKUsageBranch, PSKGroupID: []byte("g"), PSKEpoch: 9, PSKNonce: []byte{4}},
	} {
		b, err := tlspl.Marshal(&id)
		if err != nil {
			t.Fatal(err)
		}
		var back PreSharedKeyID
		if err := tlspl.Unmarshal(b, &back); err != nil {
			t.Fatalf("%x: %v", b, err)
		}
		again, _ := tlspl.Marshal(&back)
		if !bytes.Equal(b, again) {
			t.Errorf("round trip %x -> %x", b, again)
		}
	}
	for _, bad := range [][]byte{
		{0},                // PSK type 0
		{3, 0, 0},          // PSK type 3
		{2, 0, 0, 0, 0, 0}, // usage 0
		{2, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
		{1, 5, 'a'}, // short vector
	} {
		var p PreSharedKeyID
		if err := tlspl.Unmarshal(bad, &p); err == nil {
			t.Errorf("%x decoded", bad)
		}
	}
	var w tlspl.Writer
	(&PreSharedKeyID{PSKType: 7}).MarshalTLS(&w)
	if _, err := w.Bytes(); err == nil {
		t.Error("PSK type 7 encoded")
	}
}

func TestPSKSecretEmpty(t *testing.T) {
	t.Parallel()
	s, _ := MLS128DHKEMX25519AES128GCMSHA256Ed25519.impl()
	got, err := s.pskSecret(nil)
	if err != nil || !bytes.Equal(got, make([]byte, 32)) {
		t.Fatalf("psk_secret with no PSKs = %x, %v", got, err)
	}
}

// FuzzPreSharedKeyID decodes arbitrary bytes as a PreSharedKeyID: no panics, canonical re-encoding.
func FuzzPreSharedKeyID(f *testing.F) {
	f.Add([]byte{1, 3, 'e', 'x', 't', 1, 9})
	f.Add([]byte{2, 3, 1, 'g', 0, 0, 0, 0, 0, 0, 0, 5, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var p PreSharedKeyID
		if err := tlspl.Unmarshal(b, &p); err != nil {
			return
		}
		again, err := tlspl.Marshal(&p)
		if err != nil {
			t.Fatalf("re-encoding: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("not canonical:\n in  %x\n out %x", b, again)
		}
	})
}

// TestPSKSecretEmptyPSKValue checks that an empty PSK value is extracted as empty input, not
// confused with the all-zero "0" value the key schedule uses for absent secrets.
func TestPSKSecretEmptyPSKValue(t *testing.T) {
	t.Parallel()
	s, _ := MLS128DHKEMX25519AES128GCMSHA256Ed25519.impl()
	id := PreSharedKeyID{PSKType: PSKTypeExternal, PSKID: []byte("id"), PSKNonce: make([]byte, 32)}
	empty, err := s.pskSecret([]pskInput{{id: id, psk: []byte{}}})
	if err != nil {
		t.Fatal(err)
	}
	zeros, err := s.pskSecret([]pskInput{{id: id, psk: make([]byte, 32)}})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(empty, zeros) {
		t.Fatal("empty PSK and all-zero PSK give the same psk_secret")
	}
}
