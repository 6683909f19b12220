package mls

import (
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

// Proposal is a proposed change to a group (RFC 9420 §12.1). Type selects which field is used:
//
//	add                      KeyPackage
//	update                   LeafNode
//	remove                   Removed (leaf index)
//	psk                      PSK
//	reinit                   ReInit
//	external_init            KEMOutput
//	group_context_extensions Extensions
//
// Proposal types without a definition in RFC 9420 are rejected by the decoder, because their body
// has no length prefix; the exceptions are AppDataUpdate and SelfRemove of draft-ietf-mls-extensions
// (extensions_mimi.go), which MIMI needs.
type Proposal struct {
	Type       ProposalType
	KeyPackage *KeyPackage
	LeafNode   *LeafNode
	Removed    uint32
	PSK        *PreSharedKeyID
	ReInit     *ReInit
	KEMOutput  []byte
	Extensions Extensions
	// AppDataUpdate is the body of an AppDataUpdate proposal (mls-extensions, extensions_mimi.go);
	// a SelfRemove proposal has an empty body.
	AppDataUpdate *AppDataUpdate
}

// ReInit is the body of a ReInit proposal (RFC 9420 §12.1.5).
type ReInit struct {
	GroupID     []byte
	Version     ProtocolVersion
	CipherSuite CipherSuite
	Extensions  Extensions
}

// MarshalTLS implements tlspl.Marshaler.
func (ri *ReInit) MarshalTLS(w *tlspl.Writer) {
	w.Opaque(ri.GroupID)
	w.Uint16(uint16(ri.Version))
	w.Uint16(uint16(ri.CipherSuite))
	ri.Extensions.MarshalTLS(w)
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (ri *ReInit) UnmarshalTLS(r *tlspl.Reader) {
	ri.GroupID = r.Opaque()
	ri.Version = ProtocolVersion(r.Uint16())
	ri.CipherSuite = CipherSuite(r.Uint16())
	ri.Extensions.UnmarshalTLS(r)
}

// MarshalBody writes the proposal body without its type (the struct Add, Update, ... of RFC 9420
// §12.1).
func (p *Proposal) MarshalBody(w *tlspl.Writer) {
	missing := func() {
		w.SetError(fmt.Errorf("%w: %s proposal without a body", ErrMalformed, p.Type))
	}
	switch p.Type {
	case ProposalTypeAdd:
		if p.KeyPackage == nil {
			missing()
			return
		}
		p.KeyPackage.MarshalTLS(w)
	case ProposalTypeUpdate:
		if p.LeafNode == nil {
			missing()
			return
		}
		p.LeafNode.MarshalTLS(w)
	case ProposalTypeRemove:
		w.Uint32(p.Removed)
	case ProposalTypePSK:
		if p.PSK == nil {
			missing()
			return
		}
		p.PSK.MarshalTLS(w)
	case ProposalTypeReInit:
		if p.ReInit == nil {
			missing()
			return
		}
		p.ReInit.MarshalTLS(w)
	case ProposalTypeExternalInit:
		w.Opaque(p.KEMOutput)
	case ProposalTypeGroupContextExtensions:
		p.Extensions.MarshalTLS(w)
	case ProposalTypeAppDataUpdate:
		if p.AppDataUpdate == nil {
			missing()
			return
		}
		p.AppDataUpdate.MarshalTLS(w)
	case ProposalTypeSelfRemove:
	default:
		w.SetError(fmt.Errorf("%w: cannot encode proposal type %d", ErrUnknownEnum, uint16(p.Type)))
	}
}

// UnmarshalBody reads a proposal body of type t (the struct Add, Update, ... of RFC 9420 §12.1).
func (p *Proposal) UnmarshalBody(r *tlspl.Reader, t ProposalType) {
	*p = Proposal{Type: t}
	switch t {
	case ProposalTypeAdd:
		p.KeyPackage = new(KeyPackage)
		p.KeyPackage.UnmarshalTLS(r)
	case ProposalTypeUpdate:
		p.LeafNode = new(LeafNode)
		p.LeafNode.UnmarshalTLS(r)
	case ProposalTypeRemove:
		p.Removed = r.Uint32()
	case ProposalTypePSK:
		p.PSK = new(PreSharedKeyID)
		p.PSK.UnmarshalTLS(r)
	case ProposalTypeReInit:
		p.ReInit = new(ReInit)
		p.ReInit.UnmarshalTLS(r)
	case ProposalTypeExternalInit:
		p.KEMOutput = r.Opaque()
	case ProposalTypeGroupContextExtensions:
		p.Extensions.UnmarshalTLS(r)
	case ProposalTypeAppDataUpdate:
		p.AppDataUpdate = new(AppDataUpdate)
		p.AppDataUpdate.UnmarshalTLS(r)
	case ProposalTypeSelfRemove:
	default:
		r.SetError(fmt.Errorf("%w: proposal type %d", ErrUnknownEnum, uint16(t)))
	}
}

// MarshalTLS implements tlspl.Marshaler.
func (p *Proposal) MarshalTLS(w *tlspl.Writer) {
	w.Uint16(uint16(p.Type))
	p.MarshalBody(w)
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (p *Proposal) UnmarshalTLS(r *tlspl.Reader) {
	t := ProposalType(r.Uint16())
	if r.Err() != nil {
		return
	}
	p.UnmarshalBody(r, t)
}

// DecodeProposal decodes a TLS-encoded Proposal.
func DecodeProposal(b []byte) (*Proposal, error) {
	p := new(Proposal)
	if err := decode("Proposal", b, p); err != nil {
		return nil, err
	}
	return p, nil
}

// Encode returns the TLS encoding of p.
func (p *Proposal) Encode() ([]byte, error) { return encode("Proposal", p) }

// ProposalOrRefType selects between an inline proposal and a reference (RFC 9420 §12.4).
type ProposalOrRefType uint8

// ProposalOrRef types of RFC 9420 §12.4.
const (
	ProposalOrRefProposal  ProposalOrRefType = 1
	ProposalOrRefReference ProposalOrRefType = 2
)

// ProposalOrRef is an entry of a Commit's proposal list (RFC 9420 §12.4): an inline Proposal or a
// ProposalRef (the RefHash of an AuthenticatedContent, RFC 9420 §5.2).
type ProposalOrRef struct {
	Type      ProposalOrRefType
	Proposal  *Proposal
	Reference []byte
}

// MarshalTLS implements tlspl.Marshaler.
func (p *ProposalOrRef) MarshalTLS(w *tlspl.Writer) {
	w.Uint8(uint8(p.Type))
	switch {
	case p.Type == ProposalOrRefProposal && p.Proposal != nil:
		p.Proposal.MarshalTLS(w)
	case p.Type == ProposalOrRefReference:
		w.Opaque(p.Reference)
	default:
		w.SetError(fmt.Errorf("%w: ProposalOrRef of type %d", ErrMalformed, uint8(p.Type)))
	}
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (p *ProposalOrRef) UnmarshalTLS(r *tlspl.Reader) {
	*p = ProposalOrRef{Type: ProposalOrRefType(r.Uint8())}
	if r.Err() != nil {
		return
	}
	switch p.Type {
	case ProposalOrRefProposal:
		p.Proposal = new(Proposal)
		p.Proposal.UnmarshalTLS(r)
	case ProposalOrRefReference:
		p.Reference = r.Opaque()
	default:
		r.SetError(fmt.Errorf("%w: ProposalOrRef type %d", ErrUnknownEnum, uint8(p.Type)))
	}
}

// Commit applies proposals and optionally updates the committer's path (RFC 9420 §12.4).
type Commit struct {
	Proposals []ProposalOrRef
	Path      *UpdatePath // nil when absent
}

// MarshalTLS implements tlspl.Marshaler.
func (c *Commit) MarshalTLS(w *tlspl.Writer) {
	w.Vector(func(w *tlspl.Writer) {
		for i := range c.Proposals {
			c.Proposals[i].MarshalTLS(w)
		}
	})
	w.Optional(c.Path != nil, func(w *tlspl.Writer) { c.Path.MarshalTLS(w) })
}

// UnmarshalTLS implements tlspl.Unmarshaler.
func (c *Commit) UnmarshalTLS(r *tlspl.Reader) {
	*c = Commit{Proposals: []ProposalOrRef{}}
	r.ForEach(func(r *tlspl.Reader) {
		if tooMany(r, "proposals", len(c.Proposals), maxCommitProposals) {
			return
		}
		var p ProposalOrRef
		p.UnmarshalTLS(r)
		c.Proposals = append(c.Proposals, p)
	})
	r.Optional(func(r *tlspl.Reader) {
		c.Path = new(UpdatePath)
		c.Path.UnmarshalTLS(r)
	})
}

// DecodeCommit decodes a TLS-encoded Commit.
func DecodeCommit(b []byte) (*Commit, error) {
	c := new(Commit)
	if err := decode("Commit", b, c); err != nil {
		return nil, err
	}
	return c, nil
}

// Encode returns the TLS encoding of c.
func (c *Commit) Encode() ([]byte, error) { return encode("Commit", c) }
