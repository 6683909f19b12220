package mls

// GroupContext (RFC 9420 §8.1), Extension and the extension list codec (§13).

import (
	"errors"
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

// ProtocolVersion is an MLS protocol version (RFC 9420 §6).
type ProtocolVersion uint16

// ProtocolVersionMLS10 is MLS 1.0, the only version RFC 9420 defines.
const ProtocolVersionMLS10 ProtocolVersion = 1

// ExtensionType identifies an MLS extension (RFC 9420 §17.3 registry).
type ExtensionType uint16

// Extension types registered by RFC 9420 §17.3. Extension types of draft-ietf-mls-extensions are
// defined with the code that implements them.
const (
	ExtensionApplicationID        ExtensionType = 0x0001
	ExtensionRatchetTree          ExtensionType = 0x0002
	ExtensionRequiredCapabilities ExtensionType = 0x0003
	ExtensionExternalPub          ExtensionType = 0x0004
	ExtensionExternalSenders      ExtensionType = 0x0005
)

// Extension is one entry of an extension list: struct { ExtensionType extension_type; opaque
// extension_data<V>; }.
type Extension struct {
	Type ExtensionType
	Data []byte
}

// Extensions is a list of extensions, Extension extensions<V> on the wire.
type Extensions []Extension

// ErrDuplicateExtension means an extension list carries the same extension type twice, which RFC
// 9420 §13 forbids.
var ErrDuplicateExtension = errors.New("mls: duplicate extension type")

// maxExtensions bounds the number of extensions a decoded list may hold.
const maxExtensions = 1024

// MarshalTLS implements tlspl.Marshaler.
func (e *Extension) MarshalTLS(w *tlspl.Writer) {
	w.Uint16(uint16(e.Type))
	w.Opaque(e.Data)
}

// UnmarshalTLS implements tlspl.Unmarshaler. Data is a copy of the input.
func (e *Extension) UnmarshalTLS(r *tlspl.Reader) {
	e.Type = ExtensionType(r.Uint16())
	e.Data = r.OpaqueCopy()
}

// MarshalTLS implements tlspl.Marshaler.
func (es Extensions) MarshalTLS(w *tlspl.Writer) {
	w.Vector(func(w *tlspl.Writer) {
		for i := range es {
			es[i].MarshalTLS(w)
		}
	})
}

// UnmarshalTLS implements tlspl.Unmarshaler. It rejects duplicate extension types and lists longer
// than 1024 entries.
func (es *Extensions) UnmarshalTLS(r *tlspl.Reader) {
	var out Extensions
	r.ForEach(func(r *tlspl.Reader) {
		if len(out) == maxExtensions {
			r.SetError(fmt.Errorf("%w: more than %d extensions", tlspl.ErrTooLarge, maxExtensions))
			return
		}
		var e Extension
		e.UnmarshalTLS(r)
		out = append(out, e)
	})
	if r.Err() != nil {
		return
	}
	if err := out.checkDuplicates(); err != nil {
		r.SetError(err)
		return
	}
	*es = out
}

func (es Extensions) checkDuplicates() error {
	for i := range es {
		for j := i + 1; j < len(es); j++ {
			if es[i].Type == es[j].Type {
				return fmt.Errorf("%w: 0x%04x", ErrDuplicateExtension, uint16(es[i].Type))
			}
		}
	}
	return nil
}

// Find returns the data of the extension of type t and whether it is present.
func (es Extensions) Find(t ExtensionType) ([]byte, bool) {
	for _, e := range es {
		if e.Type == t {
			return e.Data, true
		}
	}
	return nil, false
}

// GroupContext summarises the state of a group in an epoch (RFC 9420 §8.1). Its encoding feeds the
// key schedule, so two members agree on all later secrets only if they agree on it byte for byte.
type GroupContext struct {
	Version                 ProtocolVersion
	CipherSuite             CipherSuite
	GroupID                 []byte
	Epoch                   uint64
	TreeHash                []byte
	ConfirmedTranscriptHash []byte
	Extensions              Extensions
}

// MarshalTLS implements tlspl.Marshaler.
func (gc *GroupContext) MarshalTLS(w *tlspl.Writer) {
	w.Uint16(uint16(gc.Version))
	w.Uint16(uint16(gc.CipherSuite))
	w.Opaque(gc.GroupID)
	w.Uint64(gc.Epoch)
	w.Opaque(gc.TreeHash)
	w.Opaque(gc.ConfirmedTranscriptHash)
	gc.Extensions.MarshalTLS(w)
}

// UnmarshalTLS implements tlspl.Unmarshaler. Byte fields are copies of the input.
func (gc *GroupContext) UnmarshalTLS(r *tlspl.Reader) {
	gc.Version = ProtocolVersion(r.Uint16())
	gc.CipherSuite = CipherSuite(r.Uint16())
	gc.GroupID = r.OpaqueCopy()
	gc.Epoch = r.Uint64()
	gc.TreeHash = r.OpaqueCopy()
	gc.ConfirmedTranscriptHash = r.OpaqueCopy()
	gc.Extensions.UnmarshalTLS(r)
}

// Marshal returns the TLS encoding of the GroupContext.
func (gc *GroupContext) Marshal() ([]byte, error) {
	b, err := tlspl.Marshal(gc)
	if err != nil {
		return nil, fmt.Errorf("mls: encoding GroupContext: %w", err)
	}
	return b, nil
}

// UnmarshalGroupContext decodes a GroupContext, rejecting trailing bytes.
func UnmarshalGroupContext(b []byte) (*GroupContext, error) {
	var gc GroupContext
	if err := tlspl.Unmarshal(b, &gc); err != nil {
		return nil, fmt.Errorf("mls: decoding GroupContext: %w", err)
	}
	return &gc, nil
}

var (
	_ tlspl.Marshaler   = (*GroupContext)(nil)
	_ tlspl.Unmarshaler = (*GroupContext)(nil)
	_ tlspl.Marshaler   = Extensions(nil)
	_ tlspl.Unmarshaler = (*Extensions)(nil)
	_ tlspl.Marshaler   = (*Extension)(nil)
	_ tlspl.Unmarshaler = (*Extension)(nil)
)
