package mls

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDecodeRejects checks that the decoders reject what RFC 9420 does not allow, with the right
// error class, and never accept trailing bytes.
func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	c := messagesCase(t, 0)
	kp := c["mls_key_package"]
	withByte := func(b []byte, i int, v byte) []byte {
		out := append([]byte(nil), b...)
		out[i] = v
		return out
	}
	tests := []struct {
		name   string
		decode func([]byte) error
		in     []byte
		want   error
	}{
		{"empty MLSMessage", decodeErr(DecodeMLSMessage), nil, tlspl.ErrShort},
		{"MLS version 2", decodeErr(DecodeMLSMessage), withByte(kp, 1, 2), ErrUnknownEnum},
		{"wire format 6", decodeErr(DecodeMLSMessage), withByte(kp, 3, 6), ErrUnknownEnum},
		{"wire format 0", decodeErr(DecodeMLSMessage), withByte(kp, 3, 0), ErrUnknownEnum},
		{"trailing byte", decodeErr(DecodeMLSMessage), append(append([]byte(nil), kp...), 0), tlspl.ErrTrailing},
		{"truncated", decodeErr(DecodeMLSMessage), kp[:len(kp)-1], tlspl.ErrShort},
		{"proposal type 0", decodeErr(DecodeProposal), mustHex(t, "000000000000"), ErrUnknownEnum},
		{"proposal type 9 (not in RFC 9420 nor decoded from mls-extensions)", decodeErr(DecodeProposal), mustHex(t, "000900"), ErrUnknownEnum},
		{"ProposalOrRef type 3", decodeErr(DecodeCommit), mustHex(t, "01"+"03"+"00"), ErrUnknownEnum},
		{"commit optional marker 2", decodeErr(DecodeCommit), mustHex(t, "0002"), tlspl.ErrInvalid},
		{"credential type 0", decodeLeaf, mustHex(t, "00"+"00"+"0000"), ErrUnknownEnum},
		{"leaf node source 4", decodeLeaf, mustHex(t, "00"+"00"+"0001"+"00"+"0000000000"+"04"), ErrUnknownEnum},
		{"empty ratchet tree", decodeTree, mustHex(t, "00"), ErrMalformed},
		{"ratchet tree ending in a blank", decodeTree, append(withLen(c["ratchet_tree"][2:], 1), 0), ErrMalformed},
		{"parent node at a leaf position", decodeTree, mustHex(t, "0a"+"01"+"02"+"00"+"00"+"00"+"01"+"02"+"00"+"00"+"00"), ErrMalformed},
		{"node type 3", decodeTree, mustHex(t, "02"+"01"+"03"), ErrUnknownEnum},
		{"sender type 5", decodePublicHeader, mustHex(t, "0001"+"0001"+"00"+"0000000000000000"+"05"), ErrUnknownEnum},
		{"content type 4", decodePublicHeader, mustHex(t, "0001"+"0001"+"00"+"0000000000000000"+"01"+"00000000"+"00"+"04"), ErrUnknownEnum},
		{"PrivateMessage content type 0", decodeErr(DecodeMLSMessage), mustHex(t, "0001"+"0002"+"00"+"0000000000000000"+"00"+"00"+"00"+"00"), ErrUnknownEnum},
		{"PSK type 3", decodeErr(decodeGroupSecrets), mustHex(t, "00"+"00"+"02"+"03"+"00"), tlspl.ErrInvalid},
		{"non-zero padding", decodeAppPMC, mustHex(t, "00"+"00"+"0001"), ErrMalformed},
		{"too large", decodeErr(DecodeMLSMessage), make([]byte, MaxMessageSize+1), ErrMessageTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.decode(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// withLen encodes body as a vector whose length also counts extra bytes the caller appends.
func withLen(body []byte, extra int) []byte {
	var w tlspl.Writer
	w.Varint(uint64(len(body) + extra))
	w.Raw(body)
	b, _ := w.Bytes()
	return b
}

func decodeErr[T any](f func([]byte) (T, error)) func([]byte) error {
	return func(b []byte) error { _, err := f(b); return err }
}

var (
	decodeLeaf   = decodeErr(DecodeLeafNode)
	decodeTree   = decodeErr(DecodeRatchetTree)
	decodeAppPMC = func(b []byte) error { _, err := decodePrivateMessageContent(b, ContentTypeApplication); return err }
)

// decodePublicHeader decodes a PublicMessage MLSMessage whose content may be cut short; only the
// error class of the header matters.
func decodePublicHeader(b []byte) error { _, err := DecodeMLSMessage(b); return err }

// TestDecodeDoesNotAlias checks that decoded values do not change when the caller reuses its buffer.
func TestDecodeDoesNotAlias(t *testing.T) {
	t.Parallel()
	in := messagesCase(t, 0)["mls_key_package"]
	buf := append([]byte(nil), in...)
	m, err := DecodeMLSMessage(buf)
	if err != nil {
		t.Fatal(err)
	}
	for i := range buf {
		buf[i] = 0xff
	}
	out, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, in) {
		t.Fatal("decoded KeyPackage changed with the input buffer")
	}
}

// TestEncodeRejects checks that values that have no encoding are refused rather than written wrongly.
func TestEncodeRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		m    tlspl.Marshaler
	}{
		{"MLSMessage without body", &MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatWelcome}},
		{"proposal without body", &Proposal{Type: ProposalTypeAdd}},
		{"unknown proposal type", &Proposal{Type: 0x0a0a}},
		{"reserved credential type", &Credential{Type: 0}},
		{"commit content without commit", &FramedContent{ContentType: ContentTypeCommit, Sender: Sender{Type: SenderTypeMember}}},
		{"node without body", &Node{Type: NodeTypeParent}},
		{"negative padding", &privateMessageContent{ContentType: ContentTypeApplication, Padding: -1}},
		{"unknown sender type", &Sender{Type: 9}},
	}
	for _, tc := range tests {
		if _, err := tlspl.Marshal(tc.m); err == nil {
			t.Errorf("%s: encoded without error", tc.name)
		}
	}
}

// TestPrivateMessageContentPadding checks the padding round trip and the padTo policy.
func TestPrivateMessageContentPadding(t *testing.T) {
	t.Parallel()
	for _, pad := range []int{0, 1, 31, 1000} {
		c := &privateMessageContent{ContentType: ContentTypeApplication, ApplicationData: []byte("hi"),
			Auth: FramedContentAuthData{Signature: []byte{1, 2, 3}}, Padding: pad}
		b, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodePrivateMessageContent(b, ContentTypeApplication)
		if err != nil {
			t.Fatal(err)
		}
		if got.Padding != pad || string(got.ApplicationData) != "hi" {
			t.Errorf("padding %d: got %+v", pad, got)
		}
	}
	for _, tc := range []struct{ n, padTo, want int }{{10, 0, 0}, {10, 1, 0}, {10, 32, 22}, {32, 32, 0}, {33, 32, 31}} {
		if got := paddingFor(tc.n, tc.padTo); got != tc.want {
			t.Errorf("paddingFor(%d, %d) = %d, want %d", tc.n, tc.padTo, got, tc.want)
		}
	}
}

// TestDecodeCountLimits checks that vectors of tiny elements are cut off at their element limit.
func TestDecodeCountLimits(t *testing.T) {
	t.Parallel()
	vector := func(elem []byte, n int) []byte {
		var w tlspl.Writer
		w.Vector(func(w *tlspl.Writer) {
			for range n {
				w.Raw(elem)
			}
		})
		b, err := w.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// A Commit of maxCommitProposals+1 empty references, no path.
	commit := append(vector([]byte{2, 0}, maxCommitProposals+1), 0)
	if _, err := DecodeCommit(commit); !errors.Is(err, tlspl.ErrTooLarge) {
		t.Errorf("commit: got %v, want ErrTooLarge", err)
	}
	// One proposal fewer decodes.
	if _, err := DecodeCommit(append(vector([]byte{2, 0}, maxCommitProposals), 0)); err != nil {
		t.Errorf("commit at the limit: %v", err)
	}
	// An UpdatePath with maxPathNodes+1 empty nodes.
	leaf, err := (&LeafNode{Credential: Credential{Type: CredentialTypeBasic}, Source: LeafNodeSourceUpdate}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	var w tlspl.Writer
	w.Raw(leaf)
	w.Raw(vector([]byte{0, 0}, maxPathNodes+1))
	path, _ := w.Bytes()
	var up UpdatePath
	if err := tlspl.Unmarshal(path, &up); !errors.Is(err, tlspl.ErrTooLarge) {
		t.Errorf("update path: got %v, want ErrTooLarge", err)
	}
}

// TestCredentialUnknownTypeOpaque checks that a credential of a type RFC 9420 does not define is
// kept as opaque<V> and re-encoded unchanged.
func TestCredentialUnknownTypeOpaque(t *testing.T) {
	t.Parallel()
	in := mustHex(t, "f0a1"+"05"+"0102030405")
	var c Credential
	if err := tlspl.Unmarshal(in, &c); err != nil {
		t.Fatal(err)
	}
	if c.Type != 0xf0a1 || !bytes.Equal(c.Data, []byte{1, 2, 3, 4, 5}) {
		t.Fatalf("decoded %+v", c)
	}
	out, err := tlspl.Marshal(&c)
	if err != nil || !bytes.Equal(out, in) {
		t.Fatalf("re-encoded %x (%v), want %x", out, err, in)
	}
	// Truncated body.
	if err := tlspl.Unmarshal(mustHex(t, "f0a1"+"05"+"01"), &c); !errors.Is(err, tlspl.ErrShort) {
		t.Fatalf("truncated: got %v, want ErrShort", err)
	}
}
