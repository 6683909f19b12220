package protocol

import (
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

// RatchetTreeRepresentation says how a ratchet tree is conveyed (draft-ietf-mls-ratchet-tree-options).
type RatchetTreeRepresentation uint8

// RatchetTreeRepresentation values.
const (
	RatchetTreeFull                RatchetTreeRepresentation = 1
	RatchetTreeHTTPSURI            RatchetTreeRepresentation = 2
	RatchetTreeOutOfBand           RatchetTreeRepresentation = 3
	RatchetTreeDistributionService RatchetTreeRepresentation = 4
)

// RatchetTreeOption conveys a ratchet tree or says where to find it.
type RatchetTreeOption struct {
	Representation RatchetTreeRepresentation
	// RatchetTree is set for full. Reading R9: encoded as RFC 9420's optional<Node>
	// ratchet_tree<V> (a tree with blank nodes cannot be written as Node<V>).
	RatchetTree mls.RatchetTree
	// URL is ratchet_tree_url (httpsUri).
	URL []byte
	// TreeSignature is set for httpsUri and outOfBand.
	TreeSignature []byte
}

// MarshalTLS implements tlspl.Marshaler.
func (o *RatchetTreeOption) MarshalTLS(w *tlspl.Writer) {
	w.Uint8(uint8(o.Representation))
	switch o.Representation {
	case RatchetTreeFull:
		if len(o.RatchetTree) == 0 {
			w.SetError(fmt.Errorf("%w: full ratchet tree option without a tree", ErrMalformed))
			return
		}
		o.RatchetTree.MarshalTLS(w)
	case RatchetTreeHTTPSURI:
		w.Opaque(o.URL)
		w.Opaque(o.TreeSignature)
	case RatchetTreeOutOfBand:
		w.Opaque(o.TreeSignature)
	case RatchetTreeDistributionService:
	default:
		w.SetError(fmt.Errorf("%w: ratchet tree representation %d", ErrMalformed, o.Representation))
	}
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (o *RatchetTreeOption) UnmarshalTLS(r *tlspl.Reader) {
	*o = RatchetTreeOption{Representation: RatchetTreeRepresentation(r.Uint8())}
	if r.Err() != nil {
		return
	}
	switch o.Representation {
	case RatchetTreeFull:
		o.RatchetTree.UnmarshalTLS(r)
	case RatchetTreeHTTPSURI:
		o.URL = r.OpaqueCopy()
		o.TreeSignature = r.OpaqueCopy()
	case RatchetTreeOutOfBand:
		o.TreeSignature = r.OpaqueCopy()
	case RatchetTreeDistributionService:
	default:
		r.SetError(fmt.Errorf("%w: ratchet tree representation %d", ErrMalformed, o.Representation))
	}
}

// GroupInfoRepresentation says whether a GroupInfoOption has a full or partial GroupInfo.
type GroupInfoRepresentation uint8

// GroupInfoRepresentation values.
const (
	GroupInfoFull    GroupInfoRepresentation = 1
	GroupInfoPartial GroupInfoRepresentation = 2
)

// RatchetTreePresence says how the ratchet tree relates to a PartialGroupInfo.
type RatchetTreePresence uint8

// RatchetTreePresence values.
const (
	RatchetTreeAbsent  RatchetTreePresence = 0
	RatchetTreePresent RatchetTreePresence = 1
	RatchetTreeRemoved RatchetTreePresence = 2
	RatchetTreeAdded   RatchetTreePresence = 3
)

// PartialGroupInfo is what the hub needs to rebuild a GroupInfo (ratchet-tree-options).
type PartialGroupInfo struct {
	RatchetTreePresence RatchetTreePresence
	GroupInfoExtensions mls.Extensions // without ratchet_tree
	Signature           []byte
}

// MarshalTLS implements tlspl.Marshaler.
func (p *PartialGroupInfo) MarshalTLS(w *tlspl.Writer) {
	if p.RatchetTreePresence > RatchetTreeAdded {
		w.SetError(fmt.Errorf("%w: ratchet tree presence %d", ErrMalformed, p.RatchetTreePresence))
	}
	w.Uint8(uint8(p.RatchetTreePresence))
	p.GroupInfoExtensions.MarshalTLS(w)
	w.Opaque(p.Signature)
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (p *PartialGroupInfo) UnmarshalTLS(r *tlspl.Reader) {
	p.RatchetTreePresence = RatchetTreePresence(r.Uint8())
	if r.Err() == nil && p.RatchetTreePresence > RatchetTreeAdded {
		r.SetError(fmt.Errorf("%w: ratchet tree presence %d", ErrMalformed, p.RatchetTreePresence))
	}
	p.GroupInfoExtensions.UnmarshalTLS(r)
	p.Signature = r.OpaqueCopy()
}

// GroupInfoOption carries the new epoch's GroupInfo in a commit bundle, full or partial.
type GroupInfoOption struct {
	Representation GroupInfoRepresentation
	GroupInfo      *mls.GroupInfo    // full
	Partial        *PartialGroupInfo // partial
}

// MarshalTLS implements tlspl.Marshaler.
func (o *GroupInfoOption) MarshalTLS(w *tlspl.Writer) {
	w.Uint8(uint8(o.Representation))
	switch {
	case o.Representation == GroupInfoFull && o.GroupInfo != nil:
		o.GroupInfo.MarshalTLS(w)
	case o.Representation == GroupInfoPartial && o.Partial != nil:
		o.Partial.MarshalTLS(w)
	default:
		w.SetError(fmt.Errorf("%w: GroupInfoOption representation %d without its value", ErrMalformed, o.Representation))
	}
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (o *GroupInfoOption) UnmarshalTLS(r *tlspl.Reader) {
	*o = GroupInfoOption{Representation: GroupInfoRepresentation(r.Uint8())}
	if r.Err() != nil {
		return
	}
	switch o.Representation {
	case GroupInfoFull:
		o.GroupInfo = new(mls.GroupInfo)
		o.GroupInfo.UnmarshalTLS(r)
	case GroupInfoPartial:
		o.Partial = new(PartialGroupInfo)
		o.Partial.UnmarshalTLS(r)
	default:
		r.SetError(fmt.Errorf("%w: GroupInfo representation %d", ErrMalformed, o.Representation))
	}
}

// HandshakeBundle is a handshake sent to the hub (§5.3): a commit with its Welcome, GroupInfo and
// tree, or a proposal with more proposals.
type HandshakeBundle struct {
	// ProposalOrCommit is a PublicMessage or PrivateMessage (reading R5); its content_type
	// selects the rest.
	ProposalOrCommit *mls.MLSMessage

	// Commit: Welcome is optional (reading R10: the bare RFC 9420 Welcome struct, not an
	// MLSMessage, as the draft writes optional<Welcome>); GroupInfoOption and RatchetTreeOption
	// are required.
	Welcome           *mls.Welcome
	GroupInfoOption   *GroupInfoOption
	RatchetTreeOption *RatchetTreeOption

	// Proposal: further proposals (PublicMessage or PrivateMessage).
	MoreProposals []*mls.MLSMessage
}

// ContentType returns the content type of ProposalOrCommit (proposal or commit).
func (h *HandshakeBundle) ContentType() (mls.ContentType, error) {
	return handshakeContentType(h.ProposalOrCommit)
}

// MarshalTLS implements tlspl.Marshaler.
func (h *HandshakeBundle) MarshalTLS(w *tlspl.Writer) {
	ct, err := h.ContentType()
	if err != nil {
		w.SetError(err)
		return
	}
	h.ProposalOrCommit.MarshalTLS(w)
	switch ct {
	case mls.ContentTypeCommit:
		if h.GroupInfoOption == nil || h.RatchetTreeOption == nil {
			w.SetError(fmt.Errorf("%w: commit bundle without GroupInfoOption or RatchetTreeOption", ErrMalformed))
			return
		}
		w.Optional(h.Welcome != nil, func(w *tlspl.Writer) { h.Welcome.MarshalTLS(w) })
		h.GroupInfoOption.MarshalTLS(w)
		h.RatchetTreeOption.MarshalTLS(w)
	case mls.ContentTypeProposal:
		writeMessages(w, h.MoreProposals)
	default:
		w.SetError(fmt.Errorf("%w: handshake bundle with content type %d", ErrMalformed, ct))
	}
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (h *HandshakeBundle) UnmarshalTLS(r *tlspl.Reader) {
	*h = HandshakeBundle{ProposalOrCommit: new(mls.MLSMessage)}
	h.ProposalOrCommit.UnmarshalTLS(r)
	if r.Err() != nil {
		return
	}
	ct, err := h.ContentType()
	if err != nil {
		r.SetError(err)
		return
	}
	switch ct {
	case mls.ContentTypeCommit:
		r.Optional(func(r *tlspl.Reader) {
			h.Welcome = new(mls.Welcome)
			h.Welcome.UnmarshalTLS(r)
		})
		h.GroupInfoOption = new(GroupInfoOption)
		h.GroupInfoOption.UnmarshalTLS(r)
		h.RatchetTreeOption = new(RatchetTreeOption)
		h.RatchetTreeOption.UnmarshalTLS(r)
	case mls.ContentTypeProposal:
		h.MoreProposals = readMessages(r)
	default:
		r.SetError(fmt.Errorf("%w: handshake bundle with content type %d", ErrMalformed, ct))
	}
}

// UpdateRequest is the body of /update (§5.3). Reading R12: it has no protocol field on the wire
// (the select is on the room's protocol); only mls10 exists, so it is just the bundle.
type UpdateRequest struct {
	Bundle HandshakeBundle
}

// MarshalTLS implements tlspl.Marshaler.
func (u *UpdateRequest) MarshalTLS(w *tlspl.Writer) { u.Bundle.MarshalTLS(w) }

// UnmarshalTLS implements tlspl.Unmarshaler.
func (u *UpdateRequest) UnmarshalTLS(r *tlspl.Reader) { u.Bundle.UnmarshalTLS(r) }

// Encode returns the TLS encoding.
func (u *UpdateRequest) Encode() ([]byte, error) { return encode("UpdateRequest", u) }

// DecodeUpdateRequest decodes an UpdateRequest body.
func DecodeUpdateRequest(b []byte) (*UpdateRequest, error) {
	u := new(UpdateRequest)
	if err := decode("UpdateRequest", b, u); err != nil {
		return nil, err
	}
	return u, nil
}

// UpdateResponseCode is the hub's answer to an /update (§5.3).
type UpdateResponseCode uint8

// UpdateResponseCode values.
const (
	UpdateSuccess         UpdateResponseCode = 0
	UpdateWrongEpoch      UpdateResponseCode = 1
	UpdateNotAllowed      UpdateResponseCode = 2
	UpdateInvalidProposal UpdateResponseCode = 3
)

// UpdateRoomResponse answers an UpdateRequest.
type UpdateRoomResponse struct {
	ResponseCode     UpdateResponseCode
	ErrorDescription string // opaque<V> UTF-8 (reading R13)
	// AcceptedTimestamp (ms) for success.
	AcceptedTimestamp uint64
	// CurrentEpoch for wrongEpoch.
	CurrentEpoch uint64
	// InvalidProposals are ProposalRefs (opaque<V> each) for invalidProposal.
	InvalidProposals [][]byte
}

// MarshalTLS implements tlspl.Marshaler.
func (u *UpdateRoomResponse) MarshalTLS(w *tlspl.Writer) {
	w.Uint8(uint8(u.ResponseCode))
	writeString(w, u.ErrorDescription)
	switch u.ResponseCode {
	case UpdateSuccess:
		w.Uint64(u.AcceptedTimestamp)
	case UpdateWrongEpoch:
		w.Uint64(u.CurrentEpoch)
	case UpdateNotAllowed:
	case UpdateInvalidProposal:
		w.Vector(func(w *tlspl.Writer) {
			for _, p := range u.InvalidProposals {
				w.Opaque(p)
			}
		})
	default:
		w.SetError(fmt.Errorf("%w: update response code %d", ErrMalformed, u.ResponseCode))
	}
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (u *UpdateRoomResponse) UnmarshalTLS(r *tlspl.Reader) {
	*u = UpdateRoomResponse{ResponseCode: UpdateResponseCode(r.Uint8())}
	u.ErrorDescription = readString(r, MaxDescriptionLength)
	if r.Err() != nil {
		return
	}
	switch u.ResponseCode {
	case UpdateSuccess:
		u.AcceptedTimestamp = r.Uint64()
	case UpdateWrongEpoch:
		u.CurrentEpoch = r.Uint64()
	case UpdateNotAllowed:
	case UpdateInvalidProposal:
		forEachLimited(r, "proposal refs", func(r *tlspl.Reader) { u.InvalidProposals = append(u.InvalidProposals, r.OpaqueCopy()) })
	default:
		r.SetError(fmt.Errorf("%w: update response code %d", ErrMalformed, u.ResponseCode))
	}
}

// Encode returns the TLS encoding.
func (u *UpdateRoomResponse) Encode() ([]byte, error) { return encode("UpdateRoomResponse", u) }

// DecodeUpdateRoomResponse decodes an UpdateRoomResponse body.
func DecodeUpdateRoomResponse(b []byte) (*UpdateRoomResponse, error) {
	u := new(UpdateRoomResponse)
	if err := decode("UpdateRoomResponse", b, u); err != nil {
		return nil, err
	}
	return u, nil
}
