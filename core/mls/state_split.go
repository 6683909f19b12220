package mls

// The group state in two parts, for storage that writes little per message: the epoch state
// (everything but the secret tree, changed only by handshake messages and commits) and the
// secret tree (the unconsumed node secrets and the ratchets in use, changed by every message
// sent or received). Both hold secrets: encrypt them at rest.

import (
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

// secretTreeStateVersion is the first byte of an encoded secret tree.
const secretTreeStateVersion = 1

// MarshalEpochState encodes the state without the secret tree's contents: what changes only
// when the member processes or sends a handshake message or moves to another epoch. Encrypt and
// the Process of an application message leave it unchanged. LoadGroupParts restores a group from
// it and MarshalSecretTree's encoding.
func (g *Group) MarshalEpochState() ([]byte, error) {
	if g.successor.Load() != nil {
		return nil, g.usable()
	}
	return g.marshalWith(&secretTree{s: g.cs, nLeaves: g.stree.nLeaves})
}

// MarshalSecretTree encodes the epoch's secret tree as it is now: the node secrets not yet
// consumed, and for each leaf used so far its ratchets' generations and secrets and the keys it
// keeps for late messages. Its size grows with the number of senders seen in the epoch, not with
// the group; a restored state neither reuses a sending generation nor accepts a replayed message.
func (g *Group) MarshalSecretTree() ([]byte, error) {
	if g.successor.Load() != nil {
		return nil, g.usable()
	}
	w := tlspl.NewWriter(256)
	w.Uint8(secretTreeStateVersion)
	g.stree.marshalState(w)
	return w.Bytes()
}

// MarshalEpochState and MarshalSecretTree refuse a superseded or removed state, as MarshalBinary.

// LoadGroupParts restores a group from an epoch state (MarshalEpochState) and a secret tree
// (MarshalSecretTree) of the same epoch.
func LoadGroupParts(epochState, secretTree []byte) (*Group, error) {
	g, err := LoadGroup(epochState)
	if err != nil {
		return nil, err
	}
	if len(g.stree.nodes) != 0 || len(g.stree.ratchets) != 0 {
		return nil, fmt.Errorf("%w: epoch state holds a secret tree", ErrMalformed)
	}
	st, err := readSecretTree(g, secretTree)
	if err != nil {
		return nil, err
	}
	g.stree = st
	return g, nil
}

// readSecretTree decodes a secret tree (MarshalSecretTree) for g's epoch.
func readSecretTree(g *Group, secretTree []byte) (*secretTree, error) {
	if len(secretTree) > maxStateSize {
		return nil, fmt.Errorf("%w: secret tree of %d bytes", ErrMessageTooLarge, len(secretTree))
	}
	if len(secretTree) == 0 || secretTree[0] != secretTreeStateVersion {
		return nil, fmt.Errorf("%w: secret tree version %v, want %d", ErrMalformed, secretTree[:min(1, len(secretTree))], secretTreeStateVersion)
	}
	r := tlspl.NewReader(secretTree[1:])
	st := unmarshalSecretTree(g.cs, r)
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: secret tree: %w", ErrMalformed, err)
	}
	if st.nLeaves != g.stree.nLeaves {
		return nil, fmt.Errorf("%w: secret tree of %d leaves for a tree of %d", ErrMalformed, st.nLeaves, g.stree.nLeaves)
	}
	for x, secret := range st.nodes {
		if uint32(x) >= 2*st.nLeaves-1 || len(secret) != g.cs.nh {
			return nil, fmt.Errorf("%w: secret tree node %d", ErrMalformed, x)
		}
	}
	for l, rs := range st.ratchets {
		if uint32(l) >= st.nLeaves || len(rs[0].secret) != g.cs.nh || len(rs[1].secret) != g.cs.nh {
			return nil, fmt.Errorf("%w: secret tree ratchets of leaf %d", ErrMalformed, l)
		}
	}
	return st, nil
}
