package mls

import (
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

// Sender identifies the sender of a message (RFC 9420 §6). Index is the leaf index for a member and
// the index into the external_senders extension for an external sender; it is unused otherwise.
type Sender struct {
	Type  SenderType
	Index uint32
}

// MarshalTLS implements tlspl.Marshaler.
func (s *Sender) MarshalTLS(w *tlspl.Writer) {
	w.Uint8(uint8(s.Type))
	switch s.Type {
	case SenderTypeMember, SenderTypeExternal:
		w.Uint32(s.Index)
	case SenderTypeNewMemberProposal, SenderTypeNewMemberCommit:
	default:
		w.SetError(fmt.Errorf("%w: cannot encode sender type %d", ErrUnknownEnum, uint8(s.Type)))
	}
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (s *Sender) UnmarshalTLS(r *tlspl.Reader) {
	*s = Sender{Type: SenderType(r.Uint8())}
	if r.Err() != nil {
		return
	}
	switch s.Type {
	case SenderTypeMember, SenderTypeExternal:
		s.Index = r.Uint32()
	case SenderTypeNewMemberProposal, SenderTypeNewMemberCommit:
	default:
		r.SetError(fmt.Errorf("%w: sender type %d", ErrUnknownEnum, uint8(s.Type)))
	}
}

func (s Sender) String() string {
	switch s.Type {
	case SenderTypeMember:
		return fmt.Sprintf("member(leaf %d)", s.Index)
	case SenderTypeExternal:
		return fmt.Sprintf("external(sender %d)", s.Index)
	}
	return s.Type.String()
}

// FramedContent is the content of a Public or PrivateMessage with its framing header (RFC 9420 §6).
// ContentType selects ApplicationData, Proposal or Commit.
type FramedContent struct {
	GroupID           []byte
	Epoch             uint64
	Sender            Sender
	AuthenticatedData []byte
	ContentType       ContentType
	ApplicationData   []byte
	Proposal          *Proposal
	Commit            *Commit
}

// marshalBody writes the content-type dependent body (shared with PrivateMessageContent).
func (c *FramedContent) marshalBody(w *tlspl.Writer) {
	switch {
	case c.ContentType == ContentTypeApplication:
		w.Opaque(c.ApplicationData)
	case c.ContentType == ContentTypeProposal && c.Proposal != nil:
		c.Proposal.MarshalTLS(w)
	case c.ContentType == ContentTypeCommit && c.Commit != nil:
		c.Commit.MarshalTLS(w)
	default:
		w.SetError(fmt.Errorf("%w: content of type %s without a body", ErrMalformed, c.ContentType))
	}
}

func (c *FramedContent) unmarshalBody(r *tlspl.Reader) {
	switch c.ContentType {
	case ContentTypeApplication:
		c.ApplicationData = r.Opaque()
	case ContentTypeProposal:
		c.Proposal = new(Proposal)
		c.Proposal.UnmarshalTLS(r)
	case ContentTypeCommit:
		c.Commit = new(Commit)
		c.Commit.UnmarshalTLS(r)
	default:
		r.SetError(fmt.Errorf("%w: content type %d", ErrUnknownEnum, uint8(c.ContentType)))
	}
}

// MarshalTLS implements tlspl.Marshaler.
func (c *FramedContent) MarshalTLS(w *tlspl.Writer) {
	w.Opaque(c.GroupID)
	w.Uint64(c.Epoch)
	c.Sender.MarshalTLS(w)
	w.Opaque(c.AuthenticatedData)
	w.Uint8(uint8(c.ContentType))
	c.marshalBody(w)
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (c *FramedContent) UnmarshalTLS(r *tlspl.Reader) {
	*c = FramedContent{}
	c.GroupID = r.Opaque()
	c.Epoch = r.Uint64()
	c.Sender.UnmarshalTLS(r)
	c.AuthenticatedData = r.Opaque()
	c.ContentType = readContentType(r)
	if r.Err() != nil {
		return
	}
	c.unmarshalBody(r)
}

// FramedContentAuthData authenticates a FramedContent (RFC 9420 §6.1): the signature over
// FramedContentTBS and, for commits only, the confirmation tag.
type FramedContentAuthData struct {
	Signature       []byte
	ConfirmationTag []byte // commit only
}

// marshal writes the auth data of content of type ct.
func (a *FramedContentAuthData) marshal(w *tlspl.Writer, ct ContentType) {
	w.Opaque(a.Signature)
	if ct == ContentTypeCommit {
		w.Opaque(a.ConfirmationTag)
	}
}

func (a *FramedContentAuthData) unmarshal(r *tlspl.Reader, ct ContentType) {
	a.Signature = r.Opaque()
	a.ConfirmationTag = nil
	if ct == ContentTypeCommit {
		a.ConfirmationTag = r.Opaque()
	}
}

// AuthenticatedContent is a FramedContent with its wire format and authentication data (RFC 9420
// §6.1). It is hashed into the transcript and into proposal references.
type authenticatedContent struct {
	WireFormat WireFormat
	Content    FramedContent
	Auth       FramedContentAuthData

	enc        *contentEncoding // the content encoded once (framedencoding.go)
	sizeHint   int              // the expected size of the encoded content, when known
	generation uint32           // the ratchet generation of a received PrivateMessage
}

// MarshalTLS implements tlspl.Marshaler.
func (ac *authenticatedContent) MarshalTLS(w *tlspl.Writer) {
	w.Uint16(uint16(ac.WireFormat))
	ac.Content.MarshalTLS(w)
	ac.Auth.marshal(w, ac.Content.ContentType)
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (ac *authenticatedContent) UnmarshalTLS(r *tlspl.Reader) {
	*ac = authenticatedContent{WireFormat: WireFormat(r.Uint16())}
	if r.Err() == nil && ac.WireFormat != WireFormatPublicMessage && ac.WireFormat != WireFormatPrivateMessage {
		r.SetError(fmt.Errorf("%w: wire format %s for framed content", ErrUnknownEnum, ac.WireFormat))
		return
	}
	ac.Content.UnmarshalTLS(r)
	ac.Auth.unmarshal(r, ac.Content.ContentType)
}

// DecodeAuthenticatedContent decodes a TLS-encoded AuthenticatedContent.
func decodeAuthenticatedContent(b []byte) (*authenticatedContent, error) {
	ac := new(authenticatedContent)
	if err := decode("AuthenticatedContent", b, ac); err != nil {
		return nil, err
	}
	return ac, nil
}

// Encode returns the TLS encoding of ac.
func (ac *authenticatedContent) Encode() ([]byte, error) { return encode("AuthenticatedContent", ac) }

// PublicMessage is a signed, unencrypted handshake or application message (RFC 9420 §6.2).
// MembershipTag is present exactly when the sender is a member.
type PublicMessage struct {
	Content       FramedContent
	Auth          FramedContentAuthData
	MembershipTag []byte // member senders only

	size int // the decoded content's size: a hint for encoding it again
}

// MarshalTLS implements tlspl.Marshaler.
func (m *PublicMessage) MarshalTLS(w *tlspl.Writer) {
	m.Content.MarshalTLS(w)
	m.Auth.marshal(w, m.Content.ContentType)
	if m.Content.Sender.Type == SenderTypeMember {
		w.Opaque(m.MembershipTag)
	}
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (m *PublicMessage) UnmarshalTLS(r *tlspl.Reader) {
	*m = PublicMessage{}
	before := r.Len()
	m.Content.UnmarshalTLS(r)
	m.size = before - r.Len()
	m.Auth.unmarshal(r, m.Content.ContentType)
	if m.Content.Sender.Type == SenderTypeMember {
		m.MembershipTag = r.Opaque()
	}
}

// PrivateMessage is an encrypted, signed message from a member (RFC 9420 §6.3).
type PrivateMessage struct {
	GroupID             []byte
	Epoch               uint64
	ContentType         ContentType
	AuthenticatedData   []byte
	EncryptedSenderData []byte
	Ciphertext          []byte
}

// MarshalTLS implements tlspl.Marshaler.
func (m *PrivateMessage) MarshalTLS(w *tlspl.Writer) {
	w.Opaque(m.GroupID)
	w.Uint64(m.Epoch)
	w.Uint8(uint8(m.ContentType))
	w.Opaque(m.AuthenticatedData)
	w.Opaque(m.EncryptedSenderData)
	w.Opaque(m.Ciphertext)
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (m *PrivateMessage) UnmarshalTLS(r *tlspl.Reader) {
	m.GroupID = r.Opaque()
	m.Epoch = r.Uint64()
	m.ContentType = readContentType(r)
	m.AuthenticatedData = r.Opaque()
	m.EncryptedSenderData = r.Opaque()
	m.Ciphertext = r.Opaque()
}

// PrivateMessageContent is the plaintext of PrivateMessage.Ciphertext (RFC 9420 §6.3.1): the content
// body (its type is PrivateMessage.ContentType), the auth data and Padding zero bytes.
type privateMessageContent struct {
	ContentType     ContentType
	ApplicationData []byte
	Proposal        *Proposal
	Commit          *Commit
	Auth            FramedContentAuthData
	Padding         int // number of zero bytes appended
}

func (c *privateMessageContent) framed() *FramedContent {
	return &FramedContent{ContentType: c.ContentType, ApplicationData: c.ApplicationData, Proposal: c.Proposal, Commit: c.Commit}
}

// MarshalTLS implements tlspl.Marshaler.
func (c *privateMessageContent) MarshalTLS(w *tlspl.Writer) {
	c.framed().marshalBody(w)
	c.Auth.marshal(w, c.ContentType)
	if c.Padding < 0 || c.Padding > MaxMessageSize {
		w.SetError(fmt.Errorf("%w: padding of %d bytes", ErrMalformed, c.Padding))
		return
	}
	w.Raw(make([]byte, c.Padding))
}

// UnmarshalTLS implements tlspl.Unmarshaler. c.ContentType must be set before the call (it comes from
// the enclosing PrivateMessage). The padding must be all zero (RFC 9420 §6.3.1).
func (c *privateMessageContent) UnmarshalTLS(r *tlspl.Reader) {
	fc := FramedContent{ContentType: c.ContentType}
	fc.unmarshalBody(r)
	*c = privateMessageContent{ContentType: c.ContentType, ApplicationData: fc.ApplicationData, Proposal: fc.Proposal, Commit: fc.Commit}
	c.Auth.unmarshal(r, c.ContentType)
	if r.Err() != nil {
		return
	}
	pad := r.Raw(r.Len())
	for _, b := range pad {
		if b != 0 {
			r.SetError(fmt.Errorf("%w: non-zero padding", ErrMalformed))
			return
		}
	}
	c.Padding = len(pad)
}

// DecodePrivateMessageContent decodes the plaintext of a PrivateMessage of content type ct.
func decodePrivateMessageContent(b []byte, ct ContentType) (*privateMessageContent, error) {
	c := &privateMessageContent{ContentType: ct}
	if err := decode("PrivateMessageContent", b, c); err != nil {
		return nil, err
	}
	return c, nil
}

// Encode returns the TLS encoding of c, padding included.
func (c *privateMessageContent) Encode() ([]byte, error) { return encode("PrivateMessageContent", c) }

// SenderData is the plaintext of PrivateMessage.EncryptedSenderData (RFC 9420 §6.3.2).
type SenderData struct {
	LeafIndex  uint32
	Generation uint32
	ReuseGuard [4]byte
}

// MarshalTLS implements tlspl.Marshaler.
func (s *SenderData) MarshalTLS(w *tlspl.Writer) {
	w.Uint32(s.LeafIndex)
	w.Uint32(s.Generation)
	w.Raw(s.ReuseGuard[:])
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (s *SenderData) UnmarshalTLS(r *tlspl.Reader) {
	s.LeafIndex = r.Uint32()
	s.Generation = r.Uint32()
	copy(s.ReuseGuard[:], r.Raw(4))
}

// MLSMessage is the outer wrapper of everything MLS sends (RFC 9420 §6). WireFormat selects which
// one of the pointer fields is set.
type MLSMessage struct {
	Version        ProtocolVersion
	WireFormat     WireFormat
	PublicMessage  *PublicMessage
	PrivateMessage *PrivateMessage
	Welcome        *Welcome
	GroupInfo      *GroupInfo
	KeyPackage     *KeyPackage
}

// MarshalTLS implements tlspl.Marshaler.
func (m *MLSMessage) MarshalTLS(w *tlspl.Writer) {
	w.Uint16(uint16(m.Version))
	w.Uint16(uint16(m.WireFormat))
	switch {
	case m.WireFormat == WireFormatPublicMessage && m.PublicMessage != nil:
		m.PublicMessage.MarshalTLS(w)
	case m.WireFormat == WireFormatPrivateMessage && m.PrivateMessage != nil:
		m.PrivateMessage.MarshalTLS(w)
	case m.WireFormat == WireFormatWelcome && m.Welcome != nil:
		m.Welcome.MarshalTLS(w)
	case m.WireFormat == WireFormatGroupInfo && m.GroupInfo != nil:
		m.GroupInfo.MarshalTLS(w)
	case m.WireFormat == WireFormatKeyPackage && m.KeyPackage != nil:
		m.KeyPackage.MarshalTLS(w)
	default:
		w.SetError(fmt.Errorf("%w: MLSMessage of wire format %s without a body", ErrMalformed, m.WireFormat))
	}
}

// UnmarshalTLS implements tlspl.Unmarshaler. Versions other than mls10 and unknown wire formats are
// rejected.
func (m *MLSMessage) UnmarshalTLS(r *tlspl.Reader) {
	*m = MLSMessage{Version: ProtocolVersion(r.Uint16()), WireFormat: WireFormat(r.Uint16())}
	if r.Err() != nil {
		return
	}
	if m.Version != ProtocolVersionMLS10 {
		r.SetError(fmt.Errorf("%w: protocol %s", ErrUnknownEnum, versionString(m.Version)))
		return
	}
	switch m.WireFormat {
	case WireFormatPublicMessage:
		m.PublicMessage = new(PublicMessage)
		m.PublicMessage.UnmarshalTLS(r)
	case WireFormatPrivateMessage:
		m.PrivateMessage = new(PrivateMessage)
		m.PrivateMessage.UnmarshalTLS(r)
	case WireFormatWelcome:
		m.Welcome = new(Welcome)
		m.Welcome.UnmarshalTLS(r)
	case WireFormatGroupInfo:
		m.GroupInfo = new(GroupInfo)
		m.GroupInfo.UnmarshalTLS(r)
	case WireFormatKeyPackage:
		m.KeyPackage = new(KeyPackage)
		m.KeyPackage.UnmarshalTLS(r)
	default:
		r.SetError(fmt.Errorf("%w: %s", ErrUnknownEnum, m.WireFormat))
	}
}

// DecodeMLSMessage decodes a TLS-encoded MLSMessage of any wire format.
func DecodeMLSMessage(b []byte) (*MLSMessage, error) {
	m := new(MLSMessage)
	if err := decode("MLSMessage", b, m); err != nil {
		return nil, err
	}
	return m, nil
}

// Encode returns the TLS encoding of m.
func (m *MLSMessage) Encode() ([]byte, error) { return encode("MLSMessage", m) }
