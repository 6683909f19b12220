package protocol

import (
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

// GroupInfoRequest asks the hub for what an external joiner needs (§5.6).
type GroupInfoRequest struct {
	CipherSuite            mls.CipherSuite
	RequestingSignatureKey []byte
	RequestingCredential   mls.Credential
	GroupInfoPublicKey     []byte // HPKEPublicKey
	JoiningCode            []byte // empty: none
	Signature              []byte
}

func (g *GroupInfoRequest) marshalHead(w *tlspl.Writer) {
	w.Uint16(uint16(g.CipherSuite))
	w.Opaque(g.RequestingSignatureKey)
	g.RequestingCredential.MarshalTLS(w)
	w.Opaque(g.GroupInfoPublicKey)
}

// MarshalTLS implements tlspl.Marshaler.
func (g *GroupInfoRequest) MarshalTLS(w *tlspl.Writer) {
	g.marshalHead(w)
	w.Opaque(g.JoiningCode)
	w.Opaque(g.Signature)
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (g *GroupInfoRequest) UnmarshalTLS(r *tlspl.Reader) {
	*g = GroupInfoRequest{CipherSuite: mls.CipherSuite(r.Uint16()), RequestingSignatureKey: r.OpaqueCopy()}
	g.RequestingCredential.UnmarshalTLS(r)
	g.GroupInfoPublicKey = r.OpaqueCopy()
	g.JoiningCode = r.OpaqueCopy()
	g.Signature = r.OpaqueCopy()
}

// TBS returns GroupInfoRequestTBS (reading R8 for joiningCode).
func (g *GroupInfoRequest) TBS() ([]byte, error) {
	w := tlspl.NewWriter(256)
	g.marshalHead(w)
	if groupInfoTBSJoiningCodeOptional {
		w.Optional(len(g.JoiningCode) > 0, func(w *tlspl.Writer) { w.Opaque(g.JoiningCode) })
	} else {
		w.Opaque(g.JoiningCode)
	}
	b, err := w.Bytes()
	if err != nil {
		return nil, fmt.Errorf("protocol: GroupInfoRequestTBS: %w", err)
	}
	return b, nil
}

// Sign sets Signature = SignWithLabel(priv, "GroupInfoRequestTBS", TBS) with CipherSuite's
// signature scheme.
func (g *GroupInfoRequest) Sign(priv []byte) error {
	tbs, err := g.TBS()
	if err != nil {
		return err
	}
	sig, err := g.CipherSuite.SignWithLabel(priv, labelGroupInfoRequest, tbs)
	if err != nil {
		return fmt.Errorf("protocol: sign GroupInfoRequest: %w", err)
	}
	g.Signature = sig
	return nil
}

// Verify checks Signature against RequestingSignatureKey; the error wraps ErrSignature.
func (g *GroupInfoRequest) Verify() error {
	tbs, err := g.TBS()
	if err != nil {
		return err
	}
	if err := g.CipherSuite.VerifyWithLabel(g.RequestingSignatureKey, labelGroupInfoRequest, tbs, g.Signature); err != nil {
		return fmt.Errorf("%w: GroupInfoRequest: %w", ErrSignature, err)
	}
	return nil
}

// Encode returns the TLS encoding.
func (g *GroupInfoRequest) Encode() ([]byte, error) { return encode("GroupInfoRequest", g) }

// DecodeGroupInfoRequest decodes a GroupInfoRequest body.
func DecodeGroupInfoRequest(b []byte) (*GroupInfoRequest, error) {
	g := new(GroupInfoRequest)
	if err := decode("GroupInfoRequest", b, g); err != nil {
		return nil, err
	}
	return g, nil
}

// GroupInfoCode is the hub's answer to a GroupInfoRequest (§5.6).
type GroupInfoCode uint8

// GroupInfoCode values.
const (
	GroupInfoSuccess       GroupInfoCode = 1
	GroupInfoNotAuthorized GroupInfoCode = 2
	GroupInfoNoSuchRoom    GroupInfoCode = 3
)

// PendingProposal is a proposal of the current epoch with the hub's accepted time.
type PendingProposal struct {
	Proposal        *mls.MLSMessage
	HubAcceptedTime uint64
}

// GroupInfoRatchetTreeTBE is what the hub encrypts to the joiner's groupInfoPublicKey.
type GroupInfoRatchetTreeTBE struct {
	GroupInfo         *mls.GroupInfo // without the ratchet_tree extension
	RatchetTreeOption RatchetTreeOption
	PendingProposals  []PendingProposal
}

// MarshalTLS implements tlspl.Marshaler.
func (t *GroupInfoRatchetTreeTBE) MarshalTLS(w *tlspl.Writer) {
	if t.GroupInfo == nil {
		w.SetError(fmt.Errorf("%w: no GroupInfo", ErrMalformed))
		return
	}
	t.GroupInfo.MarshalTLS(w)
	t.RatchetTreeOption.MarshalTLS(w)
	w.Vector(func(w *tlspl.Writer) {
		for _, p := range t.PendingProposals {
			if p.Proposal == nil {
				w.SetError(fmt.Errorf("%w: nil pending proposal", ErrMalformed))
				return
			}
			p.Proposal.MarshalTLS(w)
			w.Uint64(p.HubAcceptedTime)
		}
	})
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (t *GroupInfoRatchetTreeTBE) UnmarshalTLS(r *tlspl.Reader) {
	*t = GroupInfoRatchetTreeTBE{GroupInfo: new(mls.GroupInfo)}
	t.GroupInfo.UnmarshalTLS(r)
	t.RatchetTreeOption.UnmarshalTLS(r)
	forEachLimited(r, "pending proposals", func(r *tlspl.Reader) {
		p := PendingProposal{Proposal: new(mls.MLSMessage)}
		p.Proposal.UnmarshalTLS(r)
		p.HubAcceptedTime = r.Uint64()
		t.PendingProposals = append(t.PendingProposals, p)
	})
}

// Encode returns the TLS encoding.
func (t *GroupInfoRatchetTreeTBE) Encode() ([]byte, error) {
	return encode("GroupInfoRatchetTreeTBE", t)
}

// DecodeGroupInfoRatchetTreeTBE decodes a decrypted GroupInfoRatchetTreeTBE.
func DecodeGroupInfoRatchetTreeTBE(b []byte) (*GroupInfoRatchetTreeTBE, error) {
	t := new(GroupInfoRatchetTreeTBE)
	if err := decode("GroupInfoRatchetTreeTBE", b, t); err != nil {
		return nil, err
	}
	return t, nil
}

// GroupInfoResponse answers a GroupInfoRequest (§5.6).
type GroupInfoResponse struct {
	// Protocol is the draft's `version` field (reading R15: it is the Protocol enum the select uses).
	Protocol Protocol
	RoomID   IdentifierURI // opaque room_id<V>
	Status   GroupInfoCode
	// Success only:
	CipherSuite               mls.CipherSuite
	HubSender                 ExternalSender
	EncryptedGroupInfoAndTree mls.HPKECiphertext
	Signature                 []byte
}

func (g *GroupInfoResponse) marshalTBS(w *tlspl.Writer) {
	g.Protocol.marshal(w)
	g.RoomID.MarshalTLS(w)
	w.Uint8(uint8(g.Status))
	switch g.Status {
	case GroupInfoSuccess:
		w.Uint16(uint16(g.CipherSuite))
		g.HubSender.MarshalTLS(w)
		g.EncryptedGroupInfoAndTree.MarshalTLS(w)
	case GroupInfoNotAuthorized, GroupInfoNoSuchRoom:
	default:
		w.SetError(fmt.Errorf("%w: GroupInfo status %d", ErrMalformed, g.Status))
	}
}

// MarshalTLS implements tlspl.Marshaler.
func (g *GroupInfoResponse) MarshalTLS(w *tlspl.Writer) {
	g.marshalTBS(w)
	if g.Status == GroupInfoSuccess {
		w.Opaque(g.Signature)
	}
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (g *GroupInfoResponse) UnmarshalTLS(r *tlspl.Reader) {
	*g = GroupInfoResponse{Protocol: readProtocol(r)}
	g.RoomID.UnmarshalTLS(r)
	g.Status = GroupInfoCode(r.Uint8())
	if r.Err() != nil {
		return
	}
	switch g.Status {
	case GroupInfoSuccess:
		g.CipherSuite = mls.CipherSuite(r.Uint16())
		g.HubSender.UnmarshalTLS(r)
		g.EncryptedGroupInfoAndTree.UnmarshalTLS(r)
		g.Signature = r.OpaqueCopy()
	case GroupInfoNotAuthorized, GroupInfoNoSuchRoom:
	default:
		r.SetError(fmt.Errorf("%w: GroupInfo status %d", ErrMalformed, g.Status))
	}
}

// TBS returns GroupInfoResponseTBS: the response without its signature.
func (g *GroupInfoResponse) TBS() ([]byte, error) {
	w := tlspl.NewWriter(512)
	g.marshalTBS(w)
	b, err := w.Bytes()
	if err != nil {
		return nil, fmt.Errorf("protocol: GroupInfoResponseTBS: %w", err)
	}
	return b, nil
}

// Encode returns the TLS encoding.
func (g *GroupInfoResponse) Encode() ([]byte, error) { return encode("GroupInfoResponse", g) }

// DecodeGroupInfoResponse decodes a GroupInfoResponse body.
func DecodeGroupInfoResponse(b []byte) (*GroupInfoResponse, error) {
	g := new(GroupInfoResponse)
	if err := decode("GroupInfoResponse", b, g); err != nil {
		return nil, err
	}
	return g, nil
}

// SealGroupInfoResponse builds a successful GroupInfoResponse for req: it encrypts tbe to the
// joiner's groupInfoPublicKey (EncryptWithLabel with room_id as context) and signs the response
// with the hub's external-sender key (hubPriv belongs to hub.SignatureKey).
func SealGroupInfoResponse(req *GroupInfoRequest, roomID IdentifierURI, hub ExternalSender, hubPriv []byte, tbe *GroupInfoRatchetTreeTBE) (*GroupInfoResponse, error) {
	pt, err := tbe.Encode()
	if err != nil {
		return nil, err
	}
	cs := req.CipherSuite
	ct, err := cs.EncryptWithLabel(req.GroupInfoPublicKey, groupInfoEncryptionLabel, []byte(roomID), pt)
	if err != nil {
		return nil, fmt.Errorf("protocol: seal GroupInfoResponse: %w", err)
	}
	resp := &GroupInfoResponse{
		Protocol: ProtocolMLS10, RoomID: roomID, Status: GroupInfoSuccess,
		CipherSuite: cs, HubSender: hub, EncryptedGroupInfoAndTree: *ct,
	}
	tbs, err := resp.TBS()
	if err != nil {
		return nil, err
	}
	if resp.Signature, err = cs.SignWithLabel(hubPriv, labelGroupInfoResponse, tbs); err != nil {
		return nil, fmt.Errorf("protocol: sign GroupInfoResponse: %w", err)
	}
	return resp, nil
}

// Open verifies a successful response's signature with its hub_sender key and decrypts the
// GroupInfo, tree and pending proposals with the joiner's HPKE private key. The caller must also
// check that HubSender is the room's hub (e.g. listed in the group's external_senders).
func (g *GroupInfoResponse) Open(hpkePriv []byte) (*GroupInfoRatchetTreeTBE, error) {
	if g.Status != GroupInfoSuccess {
		return nil, fmt.Errorf("protocol: GroupInfoResponse status %d", g.Status)
	}
	tbs, err := g.TBS()
	if err != nil {
		return nil, err
	}
	if err := g.CipherSuite.VerifyWithLabel(g.HubSender.SignatureKey, labelGroupInfoResponse, tbs, g.Signature); err != nil {
		return nil, fmt.Errorf("%w: GroupInfoResponse: %w", ErrSignature, err)
	}
	pt, err := g.CipherSuite.DecryptWithLabel(hpkePriv, groupInfoEncryptionLabel, []byte(g.RoomID), &g.EncryptedGroupInfoAndTree)
	if err != nil {
		return nil, fmt.Errorf("protocol: open GroupInfoResponse: %w", err)
	}
	return DecodeGroupInfoRatchetTreeTBE(pt)
}
