package mls

// The group engine (RFC 9420 §11–§14): one member's state of a group in one epoch.
//
// A *Group is fixed for its epoch: GroupContext, ratchet tree, the member's private path keys,
// the epoch secrets and the transcript hashes never change after construction. A commit (made or
// received) yields a new *Group for the next epoch and leaves the old one untouched, so a rejected
// or undelivered commit costs nothing to roll back. Two parts of an epoch do move, each behind
// its own lock: the secret tree (keys are consumed per message, generations advance), and the
// cache of proposals received or sent by reference in this epoch.
//
// Each state has a lifecycle (docs/mls.md, "One live state"): once a successor was adopted (a
// processed commit, a confirmed PendingCommit, WithConfig) or the member was removed, the state
// refuses Encrypt, Commit, Process, the proposals and MarshalBinary; the state of a PendingCommit
// refuses them until PendingCommit.Confirm.

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
)

// LeafIndex is the position of a member's leaf in the ratchet tree.
type LeafIndex uint32

// Errors of the group engine; they are wrapped with context, test with errors.Is.
var (
	// ErrInvalidProposal means a proposal or the proposal list of a commit violates RFC 9420 §12.2
	// (duplicate adds or keys, removing a blank leaf, an update by the committer, ...).
	ErrInvalidProposal = errors.New("mls: invalid proposal")
	// ErrInvalidCommit means a commit is malformed or does not verify (missing path, bad
	// confirmation tag, unknown proposal reference, ...).
	ErrInvalidCommit = errors.New("mls: invalid commit")
	// ErrUnknownSender means a message's sender is not a member (or not a known external sender).
	ErrUnknownSender = errors.New("mls: unknown sender")
	// ErrOwnCommit means a member received a commit it sent itself: confirm the pending commit
	// returned by Commit instead.
	ErrOwnCommit = errors.New("mls: own commit received; confirm the pending commit instead")
	// ErrNoPSK means a PreSharedKey the commit or Welcome uses is not known here.
	ErrNoPSK = errors.New("mls: pre-shared key not available")
	// ErrRemoved means the member is no longer in the group: a commit processed by this state
	// removed it.
	ErrRemoved = errors.New("mls: member was removed from the group")
	// ErrSuperseded means a newer state of the group replaced this one (a processed or confirmed
	// commit, WithConfig): use that one. A superseded epoch's messages are useless to the other
	// members, and two live states of one member would hand out the same key and nonce.
	ErrSuperseded = errors.New("mls: group state superseded by a newer state")
	// ErrNotConfirmed means the state of a PendingCommit was used before PendingCommit.Confirm.
	ErrNotConfirmed = errors.New("mls: the commit of this state is not confirmed")
	// ErrReInit means the state is the last epoch of a group that a ReInit commit ended (RFC 9420
	// §11.2): it sends and receives nothing more; create the new group (Group.ReInitGroup) or join
	// it (JoinOptions.Resumption).
	ErrReInit = errors.New("mls: the group was reinitialised")
)

// Group limits.
const (
	// maxCachedProposals bounds the by-reference proposal cache of one epoch.
	maxCachedProposals = 1024
	// resumptionHistory is how many past epochs' resumption PSKs a member keeps.
	resumptionHistory = 8
)

// Config holds a member's sending preferences. The zero value sends handshakes as PublicMessage,
// puts the ratchet tree into Welcome GroupInfos and does not pad.
type Config struct {
	// PrivateHandshakes sends proposals and commits as PrivateMessage.
	PrivateHandshakes bool
	// OmitRatchetTree leaves the ratchet_tree extension out of GroupInfo and Welcome; joiners
	// then need the tree out of band.
	OmitRatchetTree bool
	// PadTo pads PrivateMessage content to a multiple of this many bytes (0: no padding).
	PadTo int
}

// publicState is the part of an epoch's state that anyone who sees the group's PublicMessage
// handshakes can know: the GroupContext, the ratchet tree (public keys only), the transcript hashes
// and the proposals cached by reference. A member's Group and a PublicGroup both embed it, so the
// proposal and commit rules (resolveProposals, validateProposals, applyProposals, applyCommit)
// are one code path for both. Like Group, it is fixed for its epoch except for the proposal cache.
type publicState struct {
	cs       *suite
	ctx      GroupContext
	ctxBytes []byte
	tree     *ratchetTree
	interim  []byte
	confTag  []byte
	env      Env // time and randomness; handed on to the next epoch

	mu        sync.Mutex
	proposals []cachedProposal // proposals of this epoch, by reference
}

// init sets an epoch's public state: it encodes the context and fills the tree hash cache before
// the tree is shared.
func (g *publicState) init(cs *suite, ctx GroupContext, tree *ratchetTree, interim, confTag []byte, proposals []cachedProposal, env Env) error {
	ctxBytes, err := ctx.Marshal()
	if err != nil {
		return err
	}
	tree.treeHash()
	g.cs, g.ctx, g.ctxBytes, g.tree, g.interim, g.confTag, g.proposals, g.env = cs, ctx, ctxBytes, tree, interim, confTag, proposals, env
	return nil
}

// Group is a member's state of an MLS group in one epoch. It is safe for concurrent use.
type Group struct {
	publicState
	priv    *treePrivate
	sigPriv []byte
	signer  signingKey
	secrets *epochSecrets
	cfg     Config
	// resumption holds the resumption PSKs of this and up to resumptionHistory-1 earlier epochs.
	resumption []epochPSK

	stree *secretTree // this epoch's secret tree (ratchets; has its own lock)

	// updateKeys (guarded by mu) are the leaf key pairs of Update proposals this member sent in
	// this epoch, needed if another member commits one of them.
	updateKeys []nodeKey

	// successor is the state that replaced this one (removedMark: the member was removed); set
	// once, after which the state refuses every operation that sends, receives or stores.
	successor atomic.Pointer[Group]
	// pending is set on the state of a PendingCommit until it is confirmed; parent is the state
	// the commit was made from (nil for an external join), dropped once confirmed so that a live
	// state does not keep every earlier epoch reachable.
	pending atomic.Bool
	parent  atomic.Pointer[Group]

	// reinit is the ReInit proposal of the commit that made this epoch: the group ended here and
	// the state serves only to create or join its successor (ErrReInit).
	reinit *ReInit
	// welcomeSigner is the GroupInfo signer of the Welcome this state was joined with (plus one;
	// zero: not joined from a Welcome in this process).
	welcomeSigner uint64
}

// WelcomeSigner returns the leaf of the member who signed the GroupInfo of the Welcome this state
// was joined with: the member whose commit added this one (RFC 9420 §12.4.3.1). ok is false for
// a state not made by JoinFromWelcome or JoinFromWelcomeMany (created, loaded, joined
// externally, or a later epoch).
func (g *Group) WelcomeSigner() (leaf LeafIndex, ok bool) {
	if g.welcomeSigner == 0 {
		return 0, false
	}
	return LeafIndex(g.welcomeSigner - 1), true
}

// removedMark is the successor of a state whose member a processed commit removed.
var removedMark = new(Group)

// usable reports why the state may not send, receive or be stored, or nil.
func (g *Group) usable() error {
	if g.pending.Load() {
		return fmt.Errorf("%w: the commit to epoch %d awaits PendingCommit.Confirm", ErrNotConfirmed, g.ctx.Epoch)
	}
	switch s := g.successor.Load(); s {
	case nil:
	case removedMark:
		return fmt.Errorf("%w (epoch %d)", ErrRemoved, g.ctx.Epoch+1)
	default:
		return fmt.Errorf("%w: epoch %d was followed by epoch %d", ErrSuperseded, g.ctx.Epoch, s.ctx.Epoch)
	}
	if g.reinit != nil {
		return fmt.Errorf("%w in epoch %d (new group %x): create or join the new group", ErrReInit, g.ctx.Epoch, g.reinit.GroupID)
	}
	return nil
}

// supersede records next as the state that replaces g; it fails when g has another successor.
func (g *Group) supersede(next *Group) error {
	if g.successor.CompareAndSwap(nil, next) || g.successor.Load() == next {
		return nil
	}
	return g.usable()
}

type epochPSK struct {
	epoch uint64
	psk   []byte
}

// cachedProposal is a proposal received (or sent) by reference in the current epoch.
type cachedProposal struct {
	ref      []byte
	proposal *Proposal
	sender   Sender
}

// GroupID returns the group's identifier.
func (g *publicState) GroupID() []byte { return slices.Clone(g.ctx.GroupID) }

// Epoch returns the group's epoch. A store compares it to detect a concurrent state change.
func (g *publicState) Epoch() uint64 { return g.ctx.Epoch }

// CipherSuite returns the group's cipher suite.
func (g *publicState) CipherSuite() CipherSuite { return g.ctx.CipherSuite }

// LeafIndex returns the member's own leaf index.
func (g *Group) LeafIndex() LeafIndex { return LeafIndex(g.priv.leaf()) }

// GroupContext returns a copy of the epoch's GroupContext.
func (g *publicState) GroupContext() GroupContext {
	gc, err := UnmarshalGroupContext(g.ctxBytes)
	if err != nil { // cannot happen: ctxBytes was encoded from a valid context
		return g.ctx
	}
	return *gc
}

// Extensions returns the GroupContext extensions of the epoch.
func (g *publicState) Extensions() Extensions { return g.GroupContext().Extensions }

// EpochAuthenticator returns the epoch_authenticator (RFC 9420 §8.7); members of the same epoch
// hold the same value.
func (g *Group) EpochAuthenticator() []byte { return slices.Clone(g.secrets.epochAuthenticator) }

// Export returns MLS-Exporter(label, context, length) of the epoch (RFC 9420 §8.5).
func (g *Group) Export(label string, context []byte, length int) ([]byte, error) {
	return g.cs.exporter(g.secrets.exporterSecret, label, context, length)
}

// Member is one member of the group as its leaf shows it.
type Member struct {
	Leaf         LeafIndex
	Credential   Credential
	SignatureKey []byte
}

// Members lists the group's members in leaf order.
func (g *publicState) Members() []Member {
	var out []Member
	for _, l := range g.tree.members() {
		ln := g.tree.leaf(l)
		out = append(out, Member{Leaf: LeafIndex(l), Credential: ln.Credential, SignatureKey: ln.SignatureKey})
	}
	return out
}

// Member returns the member at leaf l.
func (g *publicState) Member(l LeafIndex) (Member, bool) {
	if !g.tree.inRange(leafIndex(l)) {
		return Member{}, false
	}
	ln := g.tree.leaf(leafIndex(l))
	if ln == nil {
		return Member{}, false
	}
	return Member{Leaf: l, Credential: ln.Credential, SignatureKey: ln.SignatureKey}, true
}

// ownLeaf returns the member's leaf node.
func (g *Group) ownLeaf() *LeafNode { return g.tree.leaf(g.priv.leaf()) }

// newGroupState finishes a state: encodes the context, fixes the tree hash cache, builds the
// secret tree and carries the resumption history.
func newGroupState(cs *suite, ctx GroupContext, tree *ratchetTree, priv *treePrivate, sigPriv []byte, signer signingKey,
	secrets *epochSecrets, interim, confTag []byte, cfg Config, env Env, prevPSKs []epochPSK) (*Group, error) {
	g := &Group{priv: priv, sigPriv: sigPriv, signer: signer, cfg: cfg}
	if err := g.init(cs, ctx, tree, interim, confTag, nil, env); err != nil {
		return nil, err
	}
	st, err := newSecretTree(cs, secrets.encryptionSecret, tree.width(), defaultSecretTreeLimits)
	if err != nil {
		return nil, err
	}
	// The state keeps neither the encryption secret (the secret tree replaces it; keeping it would
	// allow re-deriving consumed keys) nor the welcome secret.
	kept := *secrets
	kept.encryptionSecret, kept.welcomeSecret = nil, nil
	g.secrets, g.stree = &kept, st
	if g.signer == nil {
		if g.signer, err = cs.parseSigningKey(sigPriv); err != nil {
			return nil, fmt.Errorf("mls: signature key: %w", err)
		}
	}
	psks := append([]epochPSK{{epoch: ctx.Epoch, psk: kept.resumptionPSK}}, prevPSKs...)
	if len(psks) > resumptionHistory {
		psks = psks[:resumptionHistory]
	}
	g.resumption = psks
	return g, nil
}

// Config returns the sending configuration in effect; use WithConfig to change it.
func (g *Group) Config() Config { return g.cfg }

// WithConfig returns the state with another sending configuration. The returned value takes over
// the epoch (its secret tree and proposal cache) and g is superseded: a secret tree is never
// shared by two live values.
func (g *Group) WithConfig(cfg Config) (*Group, error) {
	if err := g.usable(); err != nil {
		return nil, err
	}
	g.mu.Lock()
	c := &Group{publicState: publicState{cs: g.cs, ctx: g.ctx, ctxBytes: g.ctxBytes, tree: g.tree, interim: g.interim,
		confTag: g.confTag, proposals: slices.Clone(g.proposals), env: g.env}, priv: g.priv, sigPriv: g.sigPriv, signer: g.signer,
		secrets: g.secrets, cfg: cfg, resumption: g.resumption, stree: g.stree, updateKeys: slices.Clone(g.updateKeys), reinit: g.reinit}
	g.mu.Unlock()
	if err := g.supersede(c); err != nil {
		return nil, err
	}
	return c, nil
}

// resumptionPSK returns the resumption PSK of epoch e of this group, if still held.
func (g *Group) resumptionPSK(groupID []byte, e uint64) ([]byte, bool) {
	if !bytes.Equal(groupID, g.ctx.GroupID) {
		return nil, false
	}
	for _, p := range g.resumption {
		if p.epoch == e {
			return p.psk, true
		}
	}
	return nil, false
}

// PSKStore gives the values of external pre-shared keys by PSK ID.
type PSKStore interface {
	// ExternalPSK returns the secret of the external PSK with identifier id.
	ExternalPSK(id []byte) ([]byte, bool)
}

// PSKMap is a PSKStore held in memory, keyed by the PSK ID's bytes.
type PSKMap map[string][]byte

// ExternalPSK implements PSKStore.
func (m PSKMap) ExternalPSK(id []byte) ([]byte, bool) {
	v, ok := m[string(id)]
	return v, ok
}

var _ PSKStore = PSKMap(nil)

// pskInputs resolves the PSKs of a commit or Welcome: external ones from store, resumption ones
// from g's history or, for another group, from the states in from (g may be nil).
func (g *Group) pskInputs(ids []PreSharedKeyID, store PSKStore, from ...*Group) ([]pskInput, error) {
	out := make([]pskInput, 0, len(ids))
	for _, id := range ids {
		var v []byte
		var ok bool
		switch id.PSKType {
		case PSKTypeExternal:
			if store != nil {
				v, ok = store.ExternalPSK(id.PSKID)
			}
		case PSKTypeResumption:
			for _, src := range append([]*Group{g}, from...) {
				if src != nil && !ok {
					v, ok = src.resumptionPSK(id.PSKGroupID, id.PSKEpoch)
				}
			}
		}
		if !ok {
			return nil, fmt.Errorf("%w: %s", ErrNoPSK, pskName(&id))
		}
		out = append(out, pskInput{id: id, psk: v})
	}
	return out, nil
}

func pskName(id *PreSharedKeyID) string {
	if id.PSKType == PSKTypeExternal {
		return "external " + hex.EncodeToString(id.PSKID)
	}
	return fmt.Sprintf("resumption group %x epoch %d", id.PSKGroupID, id.PSKEpoch)
}

// lookupProposal finds a cached proposal by reference.
func (g *publicState) lookupProposal(ref []byte) (cachedProposal, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range g.proposals {
		if bytes.Equal(c.ref, ref) {
			return c, true
		}
	}
	return cachedProposal{}, false
}

// cacheProposal adds a proposal to the epoch's cache.
func (g *publicState) cacheProposal(c cachedProposal) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, p := range g.proposals {
		if bytes.Equal(p.ref, c.ref) {
			return nil
		}
	}
	if len(g.proposals) >= maxCachedProposals {
		return fmt.Errorf("%w: more than %d proposals cached in epoch %d", ErrInvalidProposal, maxCachedProposals, g.ctx.Epoch)
	}
	g.proposals = append(g.proposals, c)
	return nil
}

// PendingProposals returns the references of the proposals cached in this epoch.
func (g *publicState) PendingProposals() [][]byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([][]byte, len(g.proposals))
	for i, c := range g.proposals {
		out[i] = slices.Clone(c.ref)
	}
	return out
}
