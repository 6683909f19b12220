package mls

// A member's state split for a store that holds many members of one group (a provider with many
// local users in a room): the epoch's public state (GroupContext, ratchet tree, transcript
// hashes), the same for every member in the epoch and by far the largest part in a large group,
// stored once; each member's own part (its leaf's and path's private keys, signature key, epoch
// secrets, proposal cache), a few hundred bytes; and its secret tree (MarshalSecretTree). Members
// restored from one public state share its ratchet tree, read-only as every epoch's tree is.

import (
	"bytes"
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

// memberStateVersion is the first byte of an encoded member state.
const memberStateVersion = 1

// Joiner is one of our KeyPackages that a Welcome may be addressed to, with its private keys and
// signature key pair.
type Joiner struct {
	KeyPackage *KeyPackage
	Private    *KeyPackagePrivate
	Signer     *Signer
}

// JoinFromWelcomeMany joins the group of w with every joiner, as JoinFromWelcome does for each,
// but validates the group's ratchet tree (with its leaf signatures, most of a join's cost in a
// large group) once: the joiners cost one HPKE decryption and a key schedule each. The groups
// share the validated tree. It fails if any joiner cannot join.
func JoinFromWelcomeMany(w *Welcome, js []Joiner, o JoinOptions) ([]*Group, error) {
	out := make([]*Group, len(js))
	var ep *welcomeEpoch
	for i, j := range js {
		var err error
		if out[i], ep, err = joinWelcome(w, j, o, ep); err != nil {
			return nil, fmt.Errorf("mls: joiner %d: %w", i, err)
		}
	}
	return out, nil
}

// MarshalPublicState encodes the epoch's public state that all members in the epoch share: the
// GroupContext, the ratchet tree and the transcript hashes (the encoding of a PublicGroup with no
// cached proposals; LoadPublicGroup reads it). It changes only with the epoch.
func (g *Group) MarshalPublicState() ([]byte, error) {
	if g.successor.Load() != nil {
		return nil, g.usable()
	}
	pg := &PublicGroup{publicState: publicState{cs: g.cs, ctx: g.ctx, ctxBytes: g.ctxBytes, tree: g.tree,
		interim: g.interim, confTag: g.confTag}}
	return pg.MarshalBinary()
}

// MarshalMemberState encodes the member's own part of its epoch state: what MarshalEpochState
// holds except the public state (MarshalPublicState) and the secret tree (MarshalSecretTree),
// bound to the epoch's GroupContext. Like the epoch state it changes only when the member
// processes or sends a handshake message or moves to another epoch. Like MarshalBinary it refuses
// a superseded or removed state.
func (g *Group) MarshalMemberState() ([]byte, error) {
	if g.successor.Load() != nil {
		return nil, g.usable()
	}
	w := tlspl.NewWriter(1024)
	w.Uint8(memberStateVersion)
	w.Opaque(g.cs.hash(g.ctxBytes))
	g.writePrivate(w, &secretTree{s: g.cs, nLeaves: g.stree.nLeaves})
	return w.Bytes()
}

// LoadMember restores a member's group from its epoch's public state pub (as a PublicGroup: its
// cached proposals are ignored), its member state (MarshalMemberState) and its secret tree
// (MarshalSecretTree). The group shares pub's ratchet tree.
func LoadMember(pub *PublicGroup, member, secretTree []byte) (*Group, error) {
	if pub == nil {
		return nil, fmt.Errorf("%w: no public state", ErrMalformed)
	}
	if len(member) > maxStateSize {
		return nil, fmt.Errorf("%w: member state of %d bytes", ErrMessageTooLarge, len(member))
	}
	if len(member) == 0 || member[0] != memberStateVersion {
		return nil, fmt.Errorf("%w: member state version %v, want %d", ErrMalformed, member[:min(1, len(member))], memberStateVersion)
	}
	s := pub.cs
	r := tlspl.NewReader(member[1:])
	ctxHash := r.Opaque()
	p := readPrivate(s, r)
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: member state: %w", ErrMalformed, err)
	}
	if !bytes.Equal(ctxHash, s.hash(pub.ctxBytes)) {
		return nil, fmt.Errorf("%w: member state of another epoch or group", ErrMalformed)
	}
	if len(p.st.nodes) != 0 || len(p.st.ratchets) != 0 {
		return nil, fmt.Errorf("%w: member state holds a secret tree", ErrMalformed)
	}
	if !bytes.Equal(p.interim, pub.interim) || !bytes.Equal(p.confTag, pub.confTag) {
		return nil, fmt.Errorf("%w: member state: transcript hashes differ from the public state", ErrMalformed)
	}
	g, err := p.group(s, pub.ctx, pub.ctxBytes, pub.tree)
	if err != nil {
		return nil, err
	}
	if g.stree, err = readSecretTree(g, secretTree); err != nil {
		return nil, err
	}
	return g, nil
}
