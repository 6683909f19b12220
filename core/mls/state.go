package mls

// A versioned binary encoding of a member's group state for storage. It holds secrets (private
// keys, epoch secrets, the secret tree's unconsumed secrets): encrypt it at rest.

import (
	"bytes"
	"encoding"
	"fmt"
	"slices"

	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

// stateVersion is the first byte of an encoded Group.
const stateVersion = 1

// maxStateSize bounds an encoded state (a 65536-leaf tree with large credentials fits).
const maxStateSize = 256 << 20

var (
	_ encoding.BinaryMarshaler   = (*Group)(nil)
	_ encoding.BinaryUnmarshaler = (*Group)(nil)
)

// MarshalBinary encodes the state for storage (version byte, then TLS presentation language).
// It includes the secret tree's current ratchet positions, so a restored state neither reuses a
// sending generation nor accepts a replayed message. A superseded or removed state is refused
// (storing it would bring an old epoch back); the state of a PendingCommit may be stored.
func (g *Group) MarshalBinary() ([]byte, error) {
	if g.successor.Load() != nil {
		return nil, g.usable()
	}
	return g.marshalWith(g.stree)
}

// marshalWith encodes the state with st in the place of the group's secret tree.
func (g *Group) marshalWith(st *secretTree) ([]byte, error) {
	w := g.writeStateHead(stateVersion)
	g.writePrivate(w, st)
	return w.Bytes()
}

// writePrivate writes what follows the head in a state encoding: the member's own keys and
// secrets, its configuration, st, the proposal cache and the Update key pairs.
func (g *Group) writePrivate(w *tlspl.Writer, st *secretTree) {
	w.Uint32(uint32(g.priv.self))
	keys := slices.Sorted(func(yield func(nodeIndex) bool) {
		for x := range g.priv.keys {
			if !yield(x) {
				return
			}
		}
	})
	w.Vector(func(w *tlspl.Writer) {
		for _, x := range keys {
			k := g.priv.keys[x]
			w.Uint32(uint32(x))
			w.Opaque(k.priv)
			w.Opaque(k.pub)
		}
	})
	w.Opaque(g.sigPriv)
	s := g.secrets
	for _, b := range [][]byte{s.joinerSecret, s.senderDataSecret, s.exporterSecret, s.epochAuthenticator,
		s.externalSecret, s.confirmationKey, s.membershipKey, s.resumptionPSK, s.initSecret, g.interim, g.confTag} {
		w.Opaque(b)
	}
	w.Bool(g.cfg.PrivateHandshakes)
	w.Bool(g.cfg.OmitRatchetTree)
	w.Uint32(uint32(max(0, g.cfg.PadTo)))
	w.Vector(func(w *tlspl.Writer) {
		for _, p := range g.resumption {
			w.Uint64(p.epoch)
			w.Opaque(p.psk)
		}
	})
	st.marshalState(w)
	g.mu.Lock()
	marshalProposals(w, g.proposals)
	w.Vector(func(w *tlspl.Writer) {
		for _, k := range g.updateKeys {
			w.Opaque(k.priv)
			w.Opaque(k.pub)
		}
	})
	g.mu.Unlock()
	// The ReInit of the group's last epoch, only when there is one: an encoding without it (every
	// encoding written before ReInit was supported) reads as a live group.
	if g.reinit != nil {
		g.reinit.MarshalTLS(w)
	}
}

// statePrivate is what readPrivate read.
type statePrivate struct {
	priv             *treePrivate
	sigPriv          []byte
	sec              *epochSecrets
	interim, confTag []byte
	cfg              Config
	psks             []epochPSK
	st               *secretTree
	props            []cachedProposal
	updateKeys       []nodeKey
	reinit           *ReInit
}

// readPrivate reads what writePrivate wrote; errors are left in r.
func readPrivate(s *suite, r *tlspl.Reader) *statePrivate {
	p := &statePrivate{priv: &treePrivate{self: leafIndex(r.Uint32()), keys: map[nodeIndex]nodeKey{}}, sec: &epochSecrets{}}
	r.ForEach(func(r *tlspl.Reader) {
		x := nodeIndex(r.Uint32())
		p.priv.keys[x] = nodeKey{priv: r.OpaqueCopy(), pub: r.OpaqueCopy()}
	})
	p.sigPriv = r.OpaqueCopy()
	sec := p.sec
	for _, b := range []*[]byte{&sec.joinerSecret, &sec.senderDataSecret, &sec.exporterSecret, &sec.epochAuthenticator,
		&sec.externalSecret, &sec.confirmationKey, &sec.membershipKey, &sec.resumptionPSK, &sec.initSecret, &p.interim, &p.confTag} {
		*b = r.OpaqueCopy()
	}
	p.cfg.PrivateHandshakes = r.Bool()
	p.cfg.OmitRatchetTree = r.Bool()
	p.cfg.PadTo = int(r.Uint32())
	r.ForEach(func(r *tlspl.Reader) {
		p.psks = append(p.psks, epochPSK{epoch: r.Uint64(), psk: r.OpaqueCopy()})
	})
	p.st = unmarshalSecretTree(s, r)
	p.props = unmarshalProposals(r)
	r.ForEach(func(r *tlspl.Reader) {
		p.updateKeys = append(p.updateKeys, nodeKey{priv: r.OpaqueCopy(), pub: r.OpaqueCopy()})
	})
	if !r.Empty() {
		p.reinit = new(ReInit)
		p.reinit.UnmarshalTLS(r)
		p.reinit.GroupID = slices.Clone(p.reinit.GroupID)
		for i := range p.reinit.Extensions {
			p.reinit.Extensions[i].Data = slices.Clone(p.reinit.Extensions[i].Data)
		}
	}
	return p
}

// group checks p against the epoch's tree and returns the member's group in it.
func (p *statePrivate) group(s *suite, ctx GroupContext, ctxBytes []byte, tree *ratchetTree) (*Group, error) {
	self := p.priv.self
	if tree.leaf(self) == nil || p.st.nLeaves != tree.width() {
		return nil, fmt.Errorf("%w: group state: own leaf %d or secret tree does not fit the tree", ErrMalformed, self)
	}
	for x, k := range p.priv.keys {
		if int(x) >= len(tree.nodes) || !bytes.Equal(tree.nodes[x].encryptionKey(), k.pub) {
			return nil, fmt.Errorf("%w: group state: private key of node %d does not match the tree", ErrMalformed, x)
		}
	}
	signer, err := s.parseSigningKey(p.sigPriv)
	if err != nil {
		return nil, err
	}
	return &Group{publicState: publicState{cs: s, ctx: ctx, ctxBytes: ctxBytes, tree: tree, interim: p.interim, confTag: p.confTag,
		proposals: p.props}, priv: p.priv, sigPriv: p.sigPriv, signer: signer, secrets: p.sec, cfg: p.cfg, resumption: p.psks,
		stree: p.st, updateKeys: p.updateKeys, reinit: p.reinit}, nil
}

// UnmarshalBinary restores a state encoded by MarshalBinary into g (a new, zero Group).
func (g *Group) UnmarshalBinary(b []byte) error {
	h, r, err := readStateHead(b, stateVersion, "group state")
	if err != nil {
		return err
	}
	p := readPrivate(h.s, r)
	tree, err := h.finish(r)
	if err != nil {
		return err
	}
	ctxBytes, err := h.ctx.Marshal()
	if err != nil {
		return err
	}
	ng, err := p.group(h.s, h.ctx, ctxBytes, tree)
	if err != nil {
		return err
	}
	*g = Group{publicState: publicState{cs: ng.cs, ctx: ng.ctx, ctxBytes: ng.ctxBytes, tree: ng.tree, interim: ng.interim,
		confTag: ng.confTag, proposals: ng.proposals}, priv: ng.priv, sigPriv: ng.sigPriv, signer: ng.signer, secrets: ng.secrets,
		cfg: ng.cfg, resumption: ng.resumption, stree: ng.stree, updateKeys: ng.updateKeys, reinit: ng.reinit}
	return nil
}

// LoadGroup decodes a state encoded by MarshalBinary.
func LoadGroup(b []byte) (*Group, error) {
	g := new(Group)
	if err := g.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	return g, nil
}

// writeStateHead starts the storage encoding of a state: version, cipher suite, GroupContext and
// ratchet tree.
func (g *publicState) writeStateHead(version uint8) *tlspl.Writer {
	w := tlspl.NewWriter(4096)
	w.Uint8(version)
	w.Uint16(uint16(g.ctx.CipherSuite))
	g.ctx.MarshalTLS(w)
	g.tree.wire().MarshalTLS(w)
	return w
}

// stateHead is what readStateHead read.
type stateHead struct {
	what string // "group state", "public group state": for errors
	s    *suite
	ctx  GroupContext
	rt   RatchetTree
}

// readStateHead reads what writeStateHead wrote and returns the reader positioned after it.
func readStateHead(b []byte, version uint8, what string) (*stateHead, *tlspl.Reader, error) {
	if len(b) > maxStateSize {
		return nil, nil, fmt.Errorf("%w: %s of %d bytes", ErrMessageTooLarge, what, len(b))
	}
	if len(b) == 0 || b[0] != version {
		return nil, nil, fmt.Errorf("%w: %s version %v, want %d", ErrMalformed, what, b[:min(1, len(b))], version)
	}
	r := tlspl.NewReader(b[1:])
	cs := CipherSuite(r.Uint16())
	s, err := cs.impl()
	if err != nil {
		return nil, nil, err
	}
	h := &stateHead{what: what, s: s}
	h.ctx.UnmarshalTLS(r)
	h.rt.UnmarshalTLS(r)
	return h, r, nil
}

// finish checks that r read the whole state and that the head is consistent (the context's
// cipher suite, the tree's hash), and returns the tree.
func (h *stateHead) finish(r *tlspl.Reader) (*ratchetTree, error) {
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrMalformed, h.what, err)
	}
	if h.ctx.CipherSuite != h.s.id {
		return nil, fmt.Errorf("%w: %s of %v holds a context of %v", ErrMalformed, h.what, h.s.id, h.ctx.CipherSuite)
	}
	tree, err := ratchetTreeFromWire(h.s, h.rt)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(tree.treeHash(), h.ctx.TreeHash) {
		return nil, fmt.Errorf("%w: %s: tree hash does not match the group context", ErrMalformed, h.what)
	}
	return tree, nil
}

// marshalProposals writes a proposal cache (reference, proposal, sender).
func marshalProposals(w *tlspl.Writer, ps []cachedProposal) {
	w.Vector(func(w *tlspl.Writer) {
		for _, c := range ps {
			w.Opaque(c.ref)
			c.proposal.MarshalTLS(w)
			c.sender.MarshalTLS(w)
		}
	})
}

// unmarshalProposals reads what marshalProposals wrote; errors are left in r.
func unmarshalProposals(r *tlspl.Reader) []cachedProposal {
	var props []cachedProposal
	r.ForEach(func(r *tlspl.Reader) {
		c := cachedProposal{ref: r.OpaqueCopy(), proposal: new(Proposal)}
		c.proposal.UnmarshalTLS(r)
		c.sender.UnmarshalTLS(r)
		props = append(props, c)
	})
	return props
}

// marshalState writes the secret tree's unconsumed secrets and ratchet positions.
func (t *secretTree) marshalState(w *tlspl.Writer) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w.Uint32(t.nLeaves)
	nodes := slices.Sorted(func(yield func(nodeIndex) bool) {
		for x := range t.nodes {
			if !yield(x) {
				return
			}
		}
	})
	w.Vector(func(w *tlspl.Writer) {
		for _, x := range nodes {
			w.Uint32(uint32(x))
			w.Opaque(t.nodes[x])
		}
	})
	leaves := slices.Sorted(func(yield func(leafIndex) bool) {
		for l := range t.ratchets {
			if !yield(l) {
				return
			}
		}
	})
	w.Vector(func(w *tlspl.Writer) {
		for _, l := range leaves {
			w.Uint32(uint32(l))
			for i := range t.ratchets[l] {
				r := &t.ratchets[l][i]
				w.Uint32(r.next)
				w.Opaque(r.secret)
				w.Bool(r.spent)
				w.Vector(func(w *tlspl.Writer) {
					for _, g := range r.order {
						k := r.retained[g]
						w.Uint32(g)
						w.Opaque(k.key)
						w.Opaque(k.nonce)
					}
				})
			}
		}
	})
}

// unmarshalSecretTree reads what marshalState wrote; errors are left in r.
func unmarshalSecretTree(s *suite, r *tlspl.Reader) *secretTree {
	t := &secretTree{s: s, limits: defaultSecretTreeLimits, nodes: map[nodeIndex][]byte{}, ratchets: map[leafIndex]*[2]hashRatchet{}}
	t.nLeaves = r.Uint32()
	r.ForEach(func(r *tlspl.Reader) {
		x := nodeIndex(r.Uint32())
		t.nodes[x] = r.OpaqueCopy()
	})
	r.ForEach(func(r *tlspl.Reader) {
		l := leafIndex(r.Uint32())
		rs := &[2]hashRatchet{}
		for i := range rs {
			rs[i].next = r.Uint32()
			rs[i].secret = r.OpaqueCopy()
			rs[i].spent = r.Bool()
			rs[i].retained = map[uint32]ratchetKey{}
			r.ForEach(func(r *tlspl.Reader) {
				g := r.Uint32()
				rs[i].retained[g] = ratchetKey{key: r.OpaqueCopy(), nonce: r.OpaqueCopy()}
				rs[i].order = append(rs[i].order, g)
			})
		}
		t.ratchets[l] = rs
	})
	if r.Err() == nil && (!isPowerOfTwo(t.nLeaves)) {
		r.SetError(fmt.Errorf("secret tree of %d leaves", t.nLeaves))
	}
	return t
}
