package mls

import (
	"errors"
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

// MaxMessageSize bounds the input accepted by the exported decoders (DecodeMLSMessage, DecodeKeyPackage,
// ...). Larger inputs are rejected before any parsing. 16 MiB holds a ratchet tree of well over
// 50,000 members.
const MaxMessageSize = 16 << 20

// Bounds on element counts, so that the memory a decoder allocates stays proportional to a small
// multiple of its input even for elements of one or two bytes (a blank tree node, a proposal
// reference). They are far above what a real group produces.
const (
	maxLeaves          = 1 << 20            // members of a group
	maxTreeNodes       = 2*maxLeaves - 1    // nodes of a ratchet tree of maxLeaves leaves
	maxPathNodes       = 32                 // UpdatePath nodes: the depth of a tree with uint32 leaf indices
	maxCommitProposals = 1 << 16            // proposals (inline or by reference) in one Commit
	maxWelcomeSecrets  = maxCommitProposals // recipients of one Welcome
	maxCertificates    = 64                 // certificates in an x509 credential chain
)

// tooMany sets r's error and reports true when a vector already holds limit elements.
func tooMany(r *tlspl.Reader, what string, n, limit int) bool {
	if n < limit {
		return false
	}
	r.SetError(fmt.Errorf("%w: more than %d %s", tlspl.ErrTooLarge, limit, what))
	return true
}

// Errors reported by the wire decoders. They are wrapped with context; test with errors.Is.
var (
	// ErrUnknownEnum means a decoder met an enum value that RFC 9420 gives no encoding for, so the
	// rest of the structure cannot be parsed (for example an unknown proposal or credential type).
	ErrUnknownEnum = errors.New("mls: unknown or reserved enum value")
	// ErrMessageTooLarge means an input exceeded MaxMessageSize.
	ErrMessageTooLarge = errors.New("mls: message too large")
	// ErrMalformed means a structure decoded but violates a constraint of RFC 9420 (for example
	// non-zero padding or a reuse guard of the wrong size).
	ErrMalformed = errors.New("mls: malformed structure")
)

// versionString names a protocol version for messages and Inspect.
func versionString(v ProtocolVersion) string {
	if v == ProtocolVersionMLS10 {
		return "mls10"
	}
	return fmt.Sprintf("version(0x%04x)", uint16(v))
}

// WireFormat selects the body of an MLSMessage (RFC 9420 §6).
type WireFormat uint16

// Wire formats of RFC 9420 §17.2.
const (
	WireFormatPublicMessage  WireFormat = 1
	WireFormatPrivateMessage WireFormat = 2
	WireFormatWelcome        WireFormat = 3
	WireFormatGroupInfo      WireFormat = 4
	WireFormatKeyPackage     WireFormat = 5
)

func (f WireFormat) String() string {
	switch f {
	case WireFormatPublicMessage:
		return "mls_public_message"
	case WireFormatPrivateMessage:
		return "mls_private_message"
	case WireFormatWelcome:
		return "mls_welcome"
	case WireFormatGroupInfo:
		return "mls_group_info"
	case WireFormatKeyPackage:
		return "mls_key_package"
	}
	return fmt.Sprintf("wire_format(0x%04x)", uint16(f))
}

// ContentType is the type of a FramedContent body (RFC 9420 §6).
type ContentType uint8

// Content types of RFC 9420 §6.
const (
	ContentTypeApplication ContentType = 1
	ContentTypeProposal    ContentType = 2
	ContentTypeCommit      ContentType = 3
)

func (c ContentType) String() string {
	switch c {
	case ContentTypeApplication:
		return "application"
	case ContentTypeProposal:
		return "proposal"
	case ContentTypeCommit:
		return "commit"
	}
	return fmt.Sprintf("content_type(%d)", uint8(c))
}

func (c ContentType) valid() bool { return c >= ContentTypeApplication && c <= ContentTypeCommit }

func readContentType(r *tlspl.Reader) ContentType {
	c := ContentType(r.Uint8())
	if r.Err() == nil && !c.valid() {
		r.SetError(fmt.Errorf("%w: content type %d", ErrUnknownEnum, uint8(c)))
	}
	return c
}

// SenderType says who sent a message (RFC 9420 §6).
type SenderType uint8

// Sender types of RFC 9420 §6.
const (
	SenderTypeMember            SenderType = 1
	SenderTypeExternal          SenderType = 2
	SenderTypeNewMemberProposal SenderType = 3
	SenderTypeNewMemberCommit   SenderType = 4
)

func (s SenderType) String() string {
	switch s {
	case SenderTypeMember:
		return "member"
	case SenderTypeExternal:
		return "external"
	case SenderTypeNewMemberProposal:
		return "new_member_proposal"
	case SenderTypeNewMemberCommit:
		return "new_member_commit"
	}
	return fmt.Sprintf("sender_type(%d)", uint8(s))
}

// CredentialType identifies a credential format (RFC 9420 §5.3). Values other than basic and x509
// can appear in Capabilities lists, but a Credential of an unknown type cannot be decoded because
// RFC 9420 gives it no length prefix.
type CredentialType uint16

// Credential types of RFC 9420 §17.5.
const (
	CredentialTypeBasic CredentialType = 1
	CredentialTypeX509  CredentialType = 2
)

func (c CredentialType) String() string {
	switch c {
	case CredentialTypeBasic:
		return "basic"
	case CredentialTypeX509:
		return "x509"
	}
	return fmt.Sprintf("credential_type(0x%04x)", uint16(c))
}

// ProposalType identifies a proposal (RFC 9420 §12.1, registry §17.4).
type ProposalType uint16

// Proposal types of RFC 9420 §17.4.
const (
	ProposalTypeAdd                    ProposalType = 1
	ProposalTypeUpdate                 ProposalType = 2
	ProposalTypeRemove                 ProposalType = 3
	ProposalTypePSK                    ProposalType = 4
	ProposalTypeReInit                 ProposalType = 5
	ProposalTypeExternalInit           ProposalType = 6
	ProposalTypeGroupContextExtensions ProposalType = 7
)

func (p ProposalType) String() string {
	switch p {
	case ProposalTypeAdd:
		return "add"
	case ProposalTypeUpdate:
		return "update"
	case ProposalTypeRemove:
		return "remove"
	case ProposalTypePSK:
		return "psk"
	case ProposalTypeReInit:
		return "reinit"
	case ProposalTypeExternalInit:
		return "external_init"
	case ProposalTypeGroupContextExtensions:
		return "group_context_extensions"
	}
	return fmt.Sprintf("proposal_type(0x%04x)", uint16(p))
}

// writeUint16s and readUint16s encode vectors of 16-bit enum values (Capabilities lists).
func writeUint16s[T ~uint16](w *tlspl.Writer, vs []T) {
	w.Vector(func(w *tlspl.Writer) {
		for _, v := range vs {
			w.Uint16(uint16(v))
		}
	})
}

func readUint16s[T ~uint16](r *tlspl.Reader) []T {
	vs := []T{}
	r.ForEach(func(r *tlspl.Reader) { vs = append(vs, T(r.Uint16())) })
	return vs
}

func writeUint32s(w *tlspl.Writer, vs []uint32) {
	w.Vector(func(w *tlspl.Writer) {
		for _, v := range vs {
			w.Uint32(v)
		}
	})
}

func readUint32s(r *tlspl.Reader) []uint32 {
	vs := []uint32{}
	r.ForEach(func(r *tlspl.Reader) {
		if !tooMany(r, "leaf indices", len(vs), maxLeaves) {
			vs = append(vs, r.Uint32())
		}
	})
	return vs
}

// decode is the common entry of the exported decoders: it bounds the size, copies the input (so the
// result never aliases the caller's buffer) and requires that all of it is consumed.
func decode(what string, b []byte, u tlspl.Unmarshaler) error {
	if len(b) > MaxMessageSize {
		return fmt.Errorf("mls: decode %s: %w (%d bytes, limit %d)", what, ErrMessageTooLarge, len(b), MaxMessageSize)
	}
	b = append([]byte(nil), b...)
	if err := tlspl.Unmarshal(b, u); err != nil {
		return fmt.Errorf("mls: decode %s: %w", what, err)
	}
	return nil
}

// encode is the common entry of the exported encoders.
func encode(what string, m tlspl.Marshaler) ([]byte, error) {
	b, err := tlspl.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("mls: encode %s: %w", what, err)
	}
	return b, nil
}

// Compile-time checks that the wire structs implement the codec interfaces.
var (
	_ tlspl.Marshaler   = (*MLSMessage)(nil)
	_ tlspl.Unmarshaler = (*MLSMessage)(nil)
	_ tlspl.Marshaler   = (*KeyPackage)(nil)
	_ tlspl.Unmarshaler = (*KeyPackage)(nil)
	_ tlspl.Marshaler   = (*LeafNode)(nil)
	_ tlspl.Unmarshaler = (*LeafNode)(nil)
	_ tlspl.Marshaler   = (*Credential)(nil)
	_ tlspl.Unmarshaler = (*Credential)(nil)
	_ tlspl.Marshaler   = (*Capabilities)(nil)
	_ tlspl.Unmarshaler = (*Capabilities)(nil)
	_ tlspl.Marshaler   = RatchetTree(nil)
	_ tlspl.Unmarshaler = (*RatchetTree)(nil)
	_ tlspl.Marshaler   = (*Node)(nil)
	_ tlspl.Unmarshaler = (*Node)(nil)
	_ tlspl.Marshaler   = (*ParentNode)(nil)
	_ tlspl.Unmarshaler = (*ParentNode)(nil)
	_ tlspl.Marshaler   = (*UpdatePath)(nil)
	_ tlspl.Unmarshaler = (*UpdatePath)(nil)
	_ tlspl.Marshaler   = (*UpdatePathNode)(nil)
	_ tlspl.Unmarshaler = (*UpdatePathNode)(nil)
	_ tlspl.Marshaler   = (*HPKECiphertext)(nil)
	_ tlspl.Unmarshaler = (*HPKECiphertext)(nil)
	_ tlspl.Marshaler   = (*Proposal)(nil)
	_ tlspl.Unmarshaler = (*Proposal)(nil)
	_ tlspl.Marshaler   = (*ReInit)(nil)
	_ tlspl.Unmarshaler = (*ReInit)(nil)
	_ tlspl.Marshaler   = (*ProposalOrRef)(nil)
	_ tlspl.Unmarshaler = (*ProposalOrRef)(nil)
	_ tlspl.Marshaler   = (*Commit)(nil)
	_ tlspl.Unmarshaler = (*Commit)(nil)
	_ tlspl.Marshaler   = (*Sender)(nil)
	_ tlspl.Unmarshaler = (*Sender)(nil)
	_ tlspl.Marshaler   = (*FramedContent)(nil)
	_ tlspl.Unmarshaler = (*FramedContent)(nil)
	_ tlspl.Marshaler   = (*authenticatedContent)(nil)
	_ tlspl.Unmarshaler = (*authenticatedContent)(nil)
	_ tlspl.Marshaler   = (*PublicMessage)(nil)
	_ tlspl.Unmarshaler = (*PublicMessage)(nil)
	_ tlspl.Marshaler   = (*PrivateMessage)(nil)
	_ tlspl.Unmarshaler = (*PrivateMessage)(nil)
	_ tlspl.Marshaler   = (*privateMessageContent)(nil)
	_ tlspl.Unmarshaler = (*privateMessageContent)(nil)
	_ tlspl.Marshaler   = (*SenderData)(nil)
	_ tlspl.Unmarshaler = (*SenderData)(nil)
	_ tlspl.Marshaler   = (*Welcome)(nil)
	_ tlspl.Unmarshaler = (*Welcome)(nil)
	_ tlspl.Marshaler   = (*EncryptedGroupSecrets)(nil)
	_ tlspl.Unmarshaler = (*EncryptedGroupSecrets)(nil)
	_ tlspl.Marshaler   = (*groupSecrets)(nil)
	_ tlspl.Unmarshaler = (*groupSecrets)(nil)
	_ tlspl.Marshaler   = (*GroupInfo)(nil)
	_ tlspl.Unmarshaler = (*GroupInfo)(nil)
)
