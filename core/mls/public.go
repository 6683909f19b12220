package mls

// The public view of a group: what a party that is not a member (a MIMI hub after its last local
// user left, a delivery service) can know and check from the group's PublicMessage handshakes.

import (
	"bytes"
	"encoding"
	"fmt"
	"math"
	"slices"
)

// noLeaf is the "own leaf" of a PublicGroup: no leaf is its own.
const noLeaf = leafIndex(math.MaxUint32)

// PublicGroup is the public view of an MLS group in one epoch: the GroupContext, the ratchet tree
// with public keys only, the interim transcript hash and the proposals cached by reference. It
// holds no secrets, so it cannot decrypt anything, but it follows the group's epochs from its
// PublicMessage proposals and commits exactly as members do: the GroupContext and tree of the
// next epoch are byte for byte those every member computes.
//
// What it cannot check, lacking the epoch's secrets: a PublicMessage's membership_tag (so a
// member-sender message is authenticated by its signature alone, which binds it to the sender's
// leaf and the GroupContext), a commit's confirmation_tag (so it cannot tell whether the
// committer derived the key schedule correctly: members will reject such a commit) and the
// encrypted path secrets of an UpdatePath (their public keys, the leaf node signature and the
// parent hashes are checked). PrivateMessages are out of its reach.
//
// Like Group, a PublicGroup is fixed for its epoch except for its proposal cache; Process of a
// commit returns the next epoch's PublicGroup and leaves the receiver unchanged. It is safe for
// concurrent use.
type PublicGroup struct {
	publicState
}

var (
	_ encoding.BinaryMarshaler   = (*PublicGroup)(nil)
	_ encoding.BinaryUnmarshaler = (*PublicGroup)(nil)
)

// Public returns the public view of the member's group in its epoch (with the proposals cached so
// far).
func (g *Group) Public() *PublicGroup {
	g.mu.Lock()
	props := slices.Clone(g.proposals)
	g.mu.Unlock()
	return &PublicGroup{publicState: publicState{cs: g.cs, ctx: g.ctx, ctxBytes: g.ctxBytes, tree: g.tree,
		interim: g.interim, confTag: g.confTag, proposals: props, env: g.env}}
}

// NewPublicGroup makes the public view of the epoch of a GroupInfo. The ratchet tree is the
// GroupInfo's ratchet_tree extension or, without one, tree. The tree is validated as a joiner
// validates it (RFC 9420 §12.4.3.1: tree hash against the GroupContext, parent hashes, leaf
// signatures) and the GroupInfo's signature is verified with its signer's leaf.
func NewPublicGroup(gi *GroupInfo, tree RatchetTree) (*PublicGroup, error) {
	if gi == nil {
		return nil, fmt.Errorf("%w: nil GroupInfo", ErrMalformed)
	}
	s, err := gi.GroupContext.CipherSuite.impl()
	if err != nil {
		return nil, err
	}
	t, err := verifiedGroupInfoTree(s, gi, tree)
	if err != nil {
		return nil, err
	}
	p := new(PublicGroup)
	ctx := gi.GroupContext
	interim := s.interimTranscriptHash(ctx.ConfirmedTranscriptHash, gi.ConfirmationTag)
	if err := p.init(s, ctx, t, interim, slices.Clone(gi.ConfirmationTag), nil, Env{}); err != nil {
		return nil, err
	}
	return p, nil
}

// RatchetTree returns the epoch's ratchet tree (public keys, credentials, parent hashes).
func (g *publicState) RatchetTree() RatchetTree { return g.tree.clone().wire() }

// Process handles a PublicMessage proposal or commit of the group's epoch. The signature is
// verified with the sender's key (a member's leaf, an external sender of the external_senders
// extension, the KeyPackage of a new_member_proposal, the path leaf of a new_member_commit); the
// membership_tag and confirmation_tag are not checked (see PublicGroup). A proposal is checked on
// its own and cached by reference, as by a member. A commit's proposals are resolved, validated
// and applied, and its UpdatePath's public part merged, by the member engine's own code; the
// result's Commit.Public is the next epoch's PublicGroup (Commit.State is nil). A message that
// fails any check is rejected with an error and changes nothing.
func (g *PublicGroup) Process(m *MLSMessage, o ProcessOptions) (*Received, error) {
	if m == nil {
		return nil, fmt.Errorf("%w: nil message", ErrMalformed)
	}
	if m.WireFormat != WireFormatPublicMessage {
		return nil, fmt.Errorf("%w: a public group view reads PublicMessage handshakes only, not %s", ErrNotAllowed, m.WireFormat)
	}
	if m.PublicMessage == nil {
		return nil, fmt.Errorf("%w: empty PublicMessage", ErrMalformed)
	}
	ac, err := publicContent(m.PublicMessage, &g.ctx)
	if err != nil {
		return nil, fmt.Errorf("%w (public view in epoch %d)", err, g.ctx.Epoch)
	}
	out, err := g.authenticate(ac)
	if err != nil {
		return nil, err
	}
	switch ac.Content.ContentType {
	case ContentTypeProposal:
		if err := g.receiveProposal(ac, out); err != nil {
			return nil, err
		}
	case ContentTypeCommit:
		pc, err := g.applyCommit(ac, noLeaf, o.AppData)
		if err != nil {
			return nil, err
		}
		next := new(PublicGroup)
		if err := next.init(g.cs, pc.next, pc.tree, pc.interim, slices.Clone(ac.Auth.ConfirmationTag), nil, g.env); err != nil {
			return nil, err
		}
		res := commitResult(ac.Content.Sender, pc.aps, pc.eff, nil)
		res.Epoch, res.Public = pc.next.Epoch, next
		out.Kind, out.Commit = ReceivedCommit, res
	default:
		return nil, fmt.Errorf("%w: content type %d in a PublicMessage", ErrNotAllowed, ac.Content.ContentType)
	}
	return out, nil
}

// ConfirmationTag returns the confirmation_tag of the commit that started the epoch (or of the
// GroupInfo the view was made from).
func (g *PublicGroup) ConfirmationTag() []byte { return slices.Clone(g.confTag) }

// VerifyGroupInfo checks that gi is a GroupInfo of this epoch: the same GroupContext and
// confirmation_tag, a ratchet_tree extension (if any) equal to the view's tree, and a valid
// signature by a member's leaf. The external_pub extension cannot be checked without the epoch's
// external secret.
func (g *PublicGroup) VerifyGroupInfo(gi *GroupInfo) error {
	if gi == nil {
		return fmt.Errorf("%w: nil GroupInfo", ErrMalformed)
	}
	b, err := gi.GroupContext.Marshal()
	if err != nil {
		return err
	}
	if !bytes.Equal(b, g.ctxBytes) {
		return fmt.Errorf("%w: GroupInfo of epoch %d does not carry the GroupContext of epoch %d", ErrWrongGroup, gi.GroupContext.Epoch, g.ctx.Epoch)
	}
	if !bytes.Equal(gi.ConfirmationTag, g.confTag) {
		return fmt.Errorf("%w: GroupInfo confirmation tag differs from the epoch's", ErrInvalidCommit)
	}
	if d, ok := gi.Extensions.Find(ExtensionRatchetTree); ok {
		rt, err := DecodeRatchetTree(d)
		if err != nil {
			return err
		}
		t, err := ratchetTreeFromWire(g.cs, rt)
		if err != nil {
			return err
		}
		if !bytes.Equal(t.treeHash(), g.ctx.TreeHash) {
			return fmt.Errorf("%w: GroupInfo ratchet tree does not match the tree hash", ErrInvalidTree)
		}
	}
	return verifyGroupInfoSigner(g.cs, gi, g.tree)
}

// publicStateVersion is the first byte of an encoded PublicGroup.
const publicStateVersion = 1

// MarshalBinary encodes the view for storage (version byte, then TLS presentation language). It
// holds no secrets.
func (g *PublicGroup) MarshalBinary() ([]byte, error) {
	w := g.writeStateHead(publicStateVersion)
	w.Opaque(g.interim)
	w.Opaque(g.confTag)
	g.mu.Lock()
	marshalProposals(w, g.proposals)
	g.mu.Unlock()
	return w.Bytes()
}

// UnmarshalBinary restores a view encoded by MarshalBinary into g (a new, zero PublicGroup). It
// checks that the tree matches the GroupContext's tree hash and the interim transcript hash
// follows from the confirmed one and the confirmation tag.
func (g *PublicGroup) UnmarshalBinary(b []byte) error {
	h, r, err := readStateHead(b, publicStateVersion, "public group state")
	if err != nil {
		return err
	}
	interim := r.OpaqueCopy()
	confTag := r.OpaqueCopy()
	props := unmarshalProposals(r)
	tree, err := h.finish(r)
	if err != nil {
		return err
	}
	s, ctx := h.s, h.ctx
	if !bytes.Equal(s.interimTranscriptHash(ctx.ConfirmedTranscriptHash, confTag), interim) {
		return fmt.Errorf("%w: public group state: interim transcript hash does not follow from the context", ErrMalformed)
	}
	for _, c := range props {
		if c.proposal == nil || len(c.ref) == 0 {
			return fmt.Errorf("%w: public group state: empty cached proposal", ErrMalformed)
		}
	}
	if len(props) > maxCachedProposals {
		return fmt.Errorf("%w: public group state: %d cached proposals", ErrMalformed, len(props))
	}
	return g.init(s, ctx, tree, interim, confTag, props, Env{})
}

// LoadPublicGroup decodes a view encoded by MarshalBinary.
func LoadPublicGroup(b []byte) (*PublicGroup, error) {
	g := new(PublicGroup)
	if err := g.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	return g, nil
}
