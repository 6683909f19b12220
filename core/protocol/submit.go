package protocol

import (
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

// FrankLength is the size of server_frank.
const FrankLength = 32

// Frank is the hub's franking data for an application message (§5.4.1).
type Frank struct {
	ServerFrank                  [FrankLength]byte
	FrankingSignatureCipherSuite mls.CipherSuite
	FrankingIntegritySignature   []byte
}

// MarshalTLS implements tlspl.Marshaler.
func (f *Frank) MarshalTLS(w *tlspl.Writer) {
	w.Raw(f.ServerFrank[:])
	w.Uint16(uint16(f.FrankingSignatureCipherSuite))
	w.Opaque(f.FrankingIntegritySignature)
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (f *Frank) UnmarshalTLS(r *tlspl.Reader) {
	copy(f.ServerFrank[:], r.Raw(FrankLength))
	f.FrankingSignatureCipherSuite = mls.CipherSuite(r.Uint16())
	f.FrankingIntegritySignature = r.OpaqueCopy()
}

// writeOptionalFrank writes optional<Frank> (reading R14: the draft writes `optional Frank`).
func writeOptionalFrank(w *tlspl.Writer, f *Frank) {
	w.Optional(f != nil, func(w *tlspl.Writer) { f.MarshalTLS(w) })
}

func readOptionalFrank(r *tlspl.Reader) *Frank {
	var f *Frank
	r.Optional(func(r *tlspl.Reader) {
		f = new(Frank)
		f.UnmarshalTLS(r)
	})
	return f
}

// SubmitMessageRequest submits an application message to the hub (§5.4).
type SubmitMessageRequest struct {
	Protocol Protocol
	// AppMessage is a PrivateMessage with content_type application.
	AppMessage *mls.MLSMessage
	// SendingURI is the sender's user URI (or a pseudonym).
	SendingURI IdentifierURI
}

func checkAppMessage(m *mls.MLSMessage) error {
	if m == nil || m.WireFormat != mls.WireFormatPrivateMessage || m.PrivateMessage == nil {
		return fmt.Errorf("%w: appMessage is not a PrivateMessage", ErrMalformed)
	}
	if m.PrivateMessage.ContentType != mls.ContentTypeApplication {
		return fmt.Errorf("%w: appMessage has content type %d, not application", ErrMalformed, m.PrivateMessage.ContentType)
	}
	return nil
}

// MarshalTLS implements tlspl.Marshaler.
func (s *SubmitMessageRequest) MarshalTLS(w *tlspl.Writer) {
	s.Protocol.marshal(w)
	if err := checkAppMessage(s.AppMessage); err != nil {
		w.SetError(err)
		return
	}
	s.AppMessage.MarshalTLS(w)
	s.SendingURI.MarshalTLS(w)
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (s *SubmitMessageRequest) UnmarshalTLS(r *tlspl.Reader) {
	*s = SubmitMessageRequest{Protocol: readProtocol(r), AppMessage: new(mls.MLSMessage)}
	s.AppMessage.UnmarshalTLS(r)
	if r.Err() != nil {
		return
	}
	if err := checkAppMessage(s.AppMessage); err != nil {
		r.SetError(err)
		return
	}
	s.SendingURI.UnmarshalTLS(r)
}

// Encode returns the TLS encoding.
func (s *SubmitMessageRequest) Encode() ([]byte, error) { return encode("SubmitMessageRequest", s) }

// DecodeSubmitMessageRequest decodes a SubmitMessageRequest body.
func DecodeSubmitMessageRequest(b []byte) (*SubmitMessageRequest, error) {
	s := new(SubmitMessageRequest)
	if err := decode("SubmitMessageRequest", b, s); err != nil {
		return nil, err
	}
	return s, nil
}

// SubmitResponseCode is the hub's answer to a submitted message (§5.4). The draft's select
// calls value 0 "success"; the enum calls it accepted.
type SubmitResponseCode uint8

// SubmitResponseCode values.
const (
	SubmitAccepted    SubmitResponseCode = 0
	SubmitNotAllowed  SubmitResponseCode = 1
	SubmitEpochTooOld SubmitResponseCode = 2
)

// SubmitMessageResponse answers a SubmitMessageRequest.
type SubmitMessageResponse struct {
	Protocol   Protocol
	StatusCode SubmitResponseCode
	// AcceptedTimestamp (ms) and the optional Frank for accepted.
	AcceptedTimestamp uint64
	Frank             *Frank
	// CurrentEpoch for epochTooOld.
	CurrentEpoch uint64
}

// MarshalTLS implements tlspl.Marshaler.
func (s *SubmitMessageResponse) MarshalTLS(w *tlspl.Writer) {
	s.Protocol.marshal(w)
	w.Uint8(uint8(s.StatusCode))
	switch s.StatusCode {
	case SubmitAccepted:
		w.Uint64(s.AcceptedTimestamp)
		writeOptionalFrank(w, s.Frank)
	case SubmitNotAllowed:
	case SubmitEpochTooOld:
		w.Uint64(s.CurrentEpoch)
	default:
		w.SetError(fmt.Errorf("%w: submit status %d", ErrMalformed, s.StatusCode))
	}
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (s *SubmitMessageResponse) UnmarshalTLS(r *tlspl.Reader) {
	*s = SubmitMessageResponse{Protocol: readProtocol(r), StatusCode: SubmitResponseCode(r.Uint8())}
	if r.Err() != nil {
		return
	}
	switch s.StatusCode {
	case SubmitAccepted:
		s.AcceptedTimestamp = r.Uint64()
		s.Frank = readOptionalFrank(r)
	case SubmitNotAllowed:
	case SubmitEpochTooOld:
		s.CurrentEpoch = r.Uint64()
	default:
		r.SetError(fmt.Errorf("%w: submit status %d", ErrMalformed, s.StatusCode))
	}
}

// Encode returns the TLS encoding.
func (s *SubmitMessageResponse) Encode() ([]byte, error) { return encode("SubmitMessageResponse", s) }

// DecodeSubmitMessageResponse decodes a SubmitMessageResponse body.
func DecodeSubmitMessageResponse(b []byte) (*SubmitMessageResponse, error) {
	s := new(SubmitMessageResponse)
	if err := decode("SubmitMessageResponse", b, s); err != nil {
		return nil, err
	}
	return s, nil
}

// FanoutMessage is one message the hub distributes to a follower through /notify (§5.5).
// Reading R6: there is no protocol field (mls10 implied); Kind() follows from Message.
type FanoutMessage struct {
	// Timestamp is the hub's accepted time in milliseconds.
	Timestamp uint64
	Message   *mls.MLSMessage
	// Frank: application only (optional).
	Frank *Frank
	// RatchetTreeOption: Welcome only (required).
	RatchetTreeOption *RatchetTreeOption
	// MoreProposals: proposal only; identical to the originating HandshakeBundle's list.
	MoreProposals []*mls.MLSMessage
	// ExternalProposals: commit only; proposals the hub regenerated after an external commit.
	ExternalProposals []*mls.MLSMessage
}

// Kind classifies the message (reading R6).
func (f *FanoutMessage) Kind() (FanoutKind, error) { return fanoutKind(f.Message) }

// MarshalTLS implements tlspl.Marshaler.
func (f *FanoutMessage) MarshalTLS(w *tlspl.Writer) {
	kind, err := f.Kind()
	if err != nil {
		w.SetError(err)
		return
	}
	w.Uint64(f.Timestamp)
	f.Message.MarshalTLS(w)
	switch kind {
	case FanoutApplication:
		writeOptionalFrank(w, f.Frank)
	case FanoutWelcome:
		if f.RatchetTreeOption == nil {
			w.SetError(fmt.Errorf("%w: Welcome fanout without RatchetTreeOption", ErrMalformed))
			return
		}
		f.RatchetTreeOption.MarshalTLS(w)
	case FanoutProposal:
		writeMessages(w, f.MoreProposals)
	case FanoutCommit:
		writeMessages(w, f.ExternalProposals)
	}
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (f *FanoutMessage) UnmarshalTLS(r *tlspl.Reader) {
	*f = FanoutMessage{Timestamp: r.Uint64(), Message: new(mls.MLSMessage)}
	f.Message.UnmarshalTLS(r)
	if r.Err() != nil {
		return
	}
	kind, err := f.Kind()
	if err != nil {
		r.SetError(err)
		return
	}
	switch kind {
	case FanoutApplication:
		f.Frank = readOptionalFrank(r)
	case FanoutWelcome:
		f.RatchetTreeOption = new(RatchetTreeOption)
		f.RatchetTreeOption.UnmarshalTLS(r)
	case FanoutProposal:
		f.MoreProposals = readMessages(r)
	case FanoutCommit:
		f.ExternalProposals = readMessages(r)
	}
}

// Encode returns the TLS encoding of one FanoutMessage.
func (f *FanoutMessage) Encode() ([]byte, error) { return encode("FanoutMessage", f) }

// EncodeFanoutMessages concatenates FanoutMessages into one /notify body.
func EncodeFanoutMessages(ms []*FanoutMessage) ([]byte, error) {
	if len(ms) == 0 || len(ms) > MaxFanoutMessages {
		return nil, fmt.Errorf("protocol: encode /notify body: %d FanoutMessages (1 to %d)", len(ms), MaxFanoutMessages)
	}
	w := tlspl.NewWriter(1024)
	for _, m := range ms {
		m.MarshalTLS(w)
	}
	b, err := w.Bytes()
	if err != nil {
		return nil, fmt.Errorf("protocol: encode /notify body: %w", err)
	}
	return b, nil
}

// DecodeFanoutMessages decodes a /notify body: one or more concatenated FanoutMessages.
func DecodeFanoutMessages(b []byte) ([]*FanoutMessage, error) {
	r := tlspl.NewReader(b)
	var out []*FanoutMessage
	for {
		if len(out) == MaxFanoutMessages {
			return nil, fmt.Errorf("%w: /notify body with more than %d FanoutMessages", tlspl.ErrTooLarge, MaxFanoutMessages)
		}
		m := new(FanoutMessage)
		m.UnmarshalTLS(r)
		if err := r.Err(); err != nil {
			return nil, fmt.Errorf("%w: FanoutMessage %d: %w", ErrMalformed, len(out), err)
		}
		out = append(out, m)
		if r.Len() == 0 {
			return out, nil
		}
	}
}
