package protocol

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

// Size limits of decoded fields (the drafts set none).
const (
	// MaxURILength bounds an IdentifierUri in bytes.
	MaxURILength = 1024
	// MaxListLength bounds every vector of structs (clients, proposals, cipher suites...).
	MaxListLength = 1024
	// MaxFanoutMessages bounds the FanoutMessages concatenated in one /notify body.
	MaxFanoutMessages = 1024
	// MaxDescriptionLength bounds UpdateRoomResponse.errorDescription.
	MaxDescriptionLength = 4096
)

// Errors of the wire codecs; decoders wrap them with context (errors.Is works).
var (
	// ErrMalformed means a body is not a valid encoding of the expected structure.
	ErrMalformed = errors.New("protocol: malformed message")
	// ErrUnknownProtocol means a Protocol value other than mls10.
	ErrUnknownProtocol = errors.New("protocol: unknown protocol")
	// ErrSignature means a request or response signature does not verify.
	ErrSignature = errors.New("protocol: signature does not verify")
)

// Protocol is the end-to-end protocol of a room (§4.1):
// enum { reserved(0), mls10(1), (255) } Protocol.
type Protocol uint8

// ProtocolMLS10 is MLS 1.0, the only protocol defined.
const ProtocolMLS10 Protocol = 1

func (p Protocol) marshal(w *tlspl.Writer) {
	if p != ProtocolMLS10 {
		w.SetError(fmt.Errorf("%w: %d", ErrUnknownProtocol, p))
	}
	w.Uint8(uint8(p))
}

func readProtocol(r *tlspl.Reader) Protocol {
	p := Protocol(r.Uint8())
	if r.Err() == nil && p != ProtocolMLS10 {
		r.SetError(fmt.Errorf("%w: %d", ErrUnknownProtocol, p))
	}
	return p
}

// IdentifierURI is a MIMI identifier (user, client, room...): struct { opaque uri<V>; }
// IdentifierUri. The codec checks length and UTF-8 only; callers parse it with core/event.
type IdentifierURI string

// MarshalTLS implements tlspl.Marshaler.
func (u IdentifierURI) MarshalTLS(w *tlspl.Writer) {
	if len(u) > MaxURILength {
		w.SetError(fmt.Errorf("%w: URI of %d bytes", tlspl.ErrTooLarge, len(u)))
	}
	w.Opaque([]byte(u))
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (u *IdentifierURI) UnmarshalTLS(r *tlspl.Reader) {
	b := r.Opaque()
	if r.Err() != nil {
		return
	}
	if len(b) > MaxURILength {
		r.SetError(fmt.Errorf("%w: URI of %d bytes (limit %d)", tlspl.ErrTooLarge, len(b), MaxURILength))
		return
	}
	if !utf8.Valid(b) {
		r.SetError(fmt.Errorf("%w: URI is not UTF-8", ErrMalformed))
		return
	}
	*u = IdentifierURI(b)
}

// writeString writes the draft's undefined `string` type as opaque<V> UTF-8 (reading R13).
func writeString(w *tlspl.Writer, s string) { w.Opaque([]byte(s)) }

func readString(r *tlspl.Reader, limit int) string {
	b := r.Opaque()
	if r.Err() != nil {
		return ""
	}
	if len(b) > limit {
		r.SetError(fmt.Errorf("%w: string of %d bytes (limit %d)", tlspl.ErrTooLarge, len(b), limit))
		return ""
	}
	if !utf8.Valid(b) {
		r.SetError(fmt.Errorf("%w: string is not UTF-8", ErrMalformed))
		return ""
	}
	return string(b)
}

// forEachLimited is ForEach with MaxListLength.
func forEachLimited(r *tlspl.Reader, what string, f func(r *tlspl.Reader)) {
	n := 0
	r.ForEach(func(r *tlspl.Reader) {
		if n == MaxListLength {
			r.SetError(fmt.Errorf("%w: more than %d %s", tlspl.ErrTooLarge, MaxListLength, what))
			return
		}
		n++
		f(r)
	})
}

func writeMessages(w *tlspl.Writer, ms []*mls.MLSMessage) {
	w.Vector(func(w *tlspl.Writer) {
		for _, m := range ms {
			if m == nil {
				w.SetError(fmt.Errorf("%w: nil MLSMessage in list", ErrMalformed))
				return
			}
			m.MarshalTLS(w)
		}
	})
}

func readMessages(r *tlspl.Reader) []*mls.MLSMessage {
	var out []*mls.MLSMessage
	forEachLimited(r, "MLS messages", func(r *tlspl.Reader) {
		m := new(mls.MLSMessage)
		m.UnmarshalTLS(r)
		out = append(out, m)
	})
	return out
}

func writeSuites(w *tlspl.Writer, cs []mls.CipherSuite) {
	w.Vector(func(w *tlspl.Writer) {
		for _, c := range cs {
			w.Uint16(uint16(c))
		}
	})
}

func readSuites(r *tlspl.Reader) []mls.CipherSuite {
	var out []mls.CipherSuite
	forEachLimited(r, "cipher suites", func(r *tlspl.Reader) { out = append(out, mls.CipherSuite(r.Uint16())) })
	return out
}

func writeUint16s[T ~uint16](w *tlspl.Writer, vs []T) {
	w.Vector(func(w *tlspl.Writer) {
		for _, v := range vs {
			w.Uint16(uint16(v))
		}
	})
}

func readUint16s[T ~uint16](r *tlspl.Reader) []T {
	var out []T
	forEachLimited(r, "values", func(r *tlspl.Reader) { out = append(out, T(r.Uint16())) })
	return out
}

// RequiredCapabilities is the body of RFC 9420's required_capabilities extension (§11.1), which
// KeyMaterialRequest carries as a struct.
type RequiredCapabilities struct {
	ExtensionTypes  []mls.ExtensionType
	ProposalTypes   []mls.ProposalType
	CredentialTypes []mls.CredentialType
}

// MarshalTLS implements tlspl.Marshaler.
func (c *RequiredCapabilities) MarshalTLS(w *tlspl.Writer) {
	writeUint16s(w, c.ExtensionTypes)
	writeUint16s(w, c.ProposalTypes)
	writeUint16s(w, c.CredentialTypes)
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (c *RequiredCapabilities) UnmarshalTLS(r *tlspl.Reader) {
	c.ExtensionTypes = readUint16s[mls.ExtensionType](r)
	c.ProposalTypes = readUint16s[mls.ProposalType](r)
	c.CredentialTypes = readUint16s[mls.CredentialType](r)
}

// ExternalSender is an entry of RFC 9420's external_senders extension (§12.1.8.1):
// struct { SignaturePublicKey signature_key; Credential credential; }.
type ExternalSender struct {
	SignatureKey []byte
	Credential   mls.Credential
}

// MarshalTLS implements tlspl.Marshaler.
func (e *ExternalSender) MarshalTLS(w *tlspl.Writer) {
	w.Opaque(e.SignatureKey)
	e.Credential.MarshalTLS(w)
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (e *ExternalSender) UnmarshalTLS(r *tlspl.Reader) {
	e.SignatureKey = r.OpaqueCopy()
	e.Credential.UnmarshalTLS(r)
}

// encode marshals m and wraps errors with the struct's name.
func encode(name string, m tlspl.Marshaler) ([]byte, error) {
	b, err := tlspl.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("protocol: encode %s: %w", name, err)
	}
	return b, nil
}

// decode unmarshals b into u (all of b) and wraps errors with ErrMalformed and the struct's name.
func decode(name string, b []byte, u tlspl.Unmarshaler) error {
	if err := tlspl.Unmarshal(b, u); err != nil {
		if errors.Is(err, ErrUnknownProtocol) {
			return fmt.Errorf("protocol: decode %s: %w", name, err)
		}
		return fmt.Errorf("%w: %s: %w", ErrMalformed, name, err)
	}
	return nil
}
