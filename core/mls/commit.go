package mls

// Creating and processing commits (RFC 9420 §12.4).

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
)

// CommitOptions are the proposals a commit carries besides the ones cached by reference.
type CommitOptions struct {
	// Add adds these KeyPackages' owners.
	Add []*KeyPackage
	// Remove removes these leaves.
	Remove []LeafIndex
	// PSKs injects these pre-shared keys (a fresh nonce is drawn when PSKNonce is empty).
	PSKs []PreSharedKeyID
	// Extensions, when non-nil, replaces the GroupContext extensions (GroupContextExtensions).
	Extensions Extensions
	// Proposals are further inline proposals (for example extension proposals).
	Proposals []Proposal
	// SkipCached leaves the proposals cached by reference out of the commit.
	SkipCached bool
	// AuthenticatedData is sent in the clear (authenticated) with the commit.
	AuthenticatedData []byte
	// PSKStore resolves external PSKs.
	PSKStore PSKStore
	// AppData computes new component values for AppDataUpdate proposals (nil: ReplaceAppData).
	AppData AppDataUpdater
	// ReInit, when set, ends the group (RFC 9420 §11.2): the commit carries this ReInit proposal
	// and nothing else (so Add, Remove, PSKs, Extensions and Proposals must be empty, and cached
	// proposals are left out). The new epoch's state then only creates the new group
	// (Group.ReInitGroup) or joins it (JoinOptions.Resumption).
	ReInit *ReInit
}

// PendingCommit is a commit that has been created but not yet accepted by the delivery service.
// Send Commit (to the group) and Welcome (to the new members); when the delivery service accepts
// the commit, Confirm makes State the member's state and supersedes the state the commit was made
// from. If the delivery service rejects it, drop the PendingCommit and keep using the old state
// (which stays valid for its epoch). Until Confirm, State can be read and stored but refuses to
// send, receive or commit (ErrNotConfirmed).
type PendingCommit struct {
	// Commit is the commit as an MLSMessage (PublicMessage or PrivateMessage by Config).
	Commit *MLSMessage
	// Welcome is the Welcome for the added members (nil when nobody is added).
	Welcome *MLSMessage
	// State is the member's state in the new epoch (usable after Confirm).
	State *Group
	// Result describes the commit as processing members see it.
	Result *CommitResult

	giOnce sync.Once
	gi     *GroupInfo // the new epoch's signed GroupInfo, made for the Welcome or by GroupInfo
	giErr  error
}

// GroupInfo returns the signed GroupInfo of the new epoch (with external_pub, and the ratchet tree
// unless the configuration omits it), as a delivery service hands it to external joiners. It is
// made on the first call (signing it and encoding the tree cost as much as a small commit), or
// with the Welcome when the commit adds members.
func (pc *PendingCommit) GroupInfo() (*MLSMessage, error) {
	pc.giOnce.Do(func() {
		if pc.gi == nil {
			pc.gi, pc.giErr = pc.State.groupInfo()
		}
	})
	if pc.giErr != nil {
		return nil, pc.giErr
	}
	return &MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatGroupInfo, GroupInfo: pc.gi}, nil
}

// Confirm records that the delivery service accepted the commit and returns State, now the
// member's live state; the state the commit was made from is superseded. Confirming again returns
// the same state. It fails with ErrSuperseded when the state the commit was made from has another
// successor already (a commit was processed or another PendingCommit confirmed): the delivery
// service cannot have accepted both.
func (pc *PendingCommit) Confirm() (*Group, error) {
	next := pc.State
	if next == nil {
		return nil, fmt.Errorf("%w: empty PendingCommit", ErrMalformed)
	}
	if !next.pending.Load() {
		return next, nil
	}
	if p := next.parent.Load(); p != nil {
		if err := p.supersede(next); err != nil {
			return nil, err
		}
	}
	next.pending.Store(false)
	next.parent.Store(nil)
	return next, nil
}

// CommitResult describes an applied commit.
type CommitResult struct {
	// Committer is the sender of the commit.
	Committer Sender
	// Proposals are the applied proposals in commit order.
	Proposals []Proposal
	// Added are the leaves of the members added.
	Added []LeafIndex
	// Removed are the members removed (with their leaf as it was).
	Removed []Member
	// Epoch is the new epoch.
	Epoch uint64
	// SelfRemoved is set when the commit removed the processing member; State is then nil.
	SelfRemoved bool
	// ReInit is set when the commit ended the group with a ReInit proposal: State (the group's
	// last epoch) refuses to send or receive (ErrReInit) and serves to create or join the new
	// group with these parameters.
	ReInit *ReInit
	// State is the processing member's state in the new epoch.
	State *Group
	// Public is the group's public view in the new epoch; set by PublicGroup.Process only (a
	// member gets it as State.Public()).
	Public *PublicGroup
}

// Commit creates a commit over the cached proposals and those in o, always with an UpdatePath
// (it refreshes the committer's leaf and path keys), and returns it with the Welcome, the new
// GroupInfo and the pending new state. g is not changed, except that the handshake ratchet
// advances when the commit is sent as a PrivateMessage.
func (g *Group) Commit(o CommitOptions) (*PendingCommit, error) {
	return g.commit(o, nil)
}

// commit is Commit; resumption PSKs of another group (a ReInit's) come from from.
func (g *Group) commit(o CommitOptions, from *Group) (*PendingCommit, error) {
	if err := g.usable(); err != nil {
		return nil, err
	}
	self := Sender{Type: SenderTypeMember, Index: uint32(g.priv.leaf())}
	var list []ProposalOrRef
	if o.ReInit != nil {
		if len(o.Add) > 0 || len(o.Remove) > 0 || len(o.PSKs) > 0 || o.Extensions != nil || len(o.Proposals) > 0 {
			return nil, fmt.Errorf("%w: a ReInit commit carries no other proposal", ErrInvalidProposal)
		}
		ri := *o.ReInit
		o.Proposals, o.SkipCached = []Proposal{{Type: ProposalTypeReInit, ReInit: &ri}}, true
	}
	if !o.SkipCached {
		g.mu.Lock()
		for _, c := range g.proposals {
			list = append(list, ProposalOrRef{Type: ProposalOrRefReference, Reference: c.ref})
		}
		g.mu.Unlock()
	}
	inline := func(p Proposal) { list = append(list, ProposalOrRef{Type: ProposalOrRefProposal, Proposal: &p}) }
	if o.Extensions != nil {
		inline(Proposal{Type: ProposalTypeGroupContextExtensions, Extensions: o.Extensions})
	}
	for _, r := range o.Remove {
		inline(Proposal{Type: ProposalTypeRemove, Removed: uint32(r)})
	}
	for _, kp := range o.Add {
		inline(Proposal{Type: ProposalTypeAdd, KeyPackage: kp})
	}
	for _, id := range o.PSKs {
		if len(id.PSKNonce) == 0 {
			n, err := randomBytes(g.env.Rand, g.cs.nh)
			if err != nil {
				return nil, err
			}
			id.PSKNonce = n
		}
		inline(Proposal{Type: ProposalTypePSK, PSK: &id})
	}
	for _, p := range o.Proposals {
		inline(p)
	}
	aps, err := g.resolveProposals(list, self)
	if err != nil {
		return nil, err
	}
	if err := g.validateProposals(aps, self); err != nil {
		return nil, err
	}
	tree := g.tree.clone()
	eff, err := g.applyProposals(tree, aps, self, g.priv.leaf(), o.AppData)
	if err != nil {
		return nil, err
	}
	if eff.selfRemoved {
		return nil, fmt.Errorf("%w: the committer cannot remove itself", ErrInvalidProposal)
	}
	psks, err := g.pskInputs(eff.psks, o.PSKStore, from)
	if err != nil {
		return nil, err
	}
	pskSecret, err := g.cs.pskSecret(psks)
	if err != nil {
		return nil, err
	}

	// The path (always present).
	if err := checkOwnLeaf(tree, g.ownLeaf(), g.priv.leaf(), g.ctx.CipherSuite, eff.extensions); err != nil {
		return nil, fmt.Errorf("mls: commit: %w", err)
	}
	pp, err := tree.applyNewPath(pathOptions{groupID: g.ctx.GroupID, leaf: g.priv.leaf(), template: g.ownLeaf(),
		signer: g.signer, added: eff.added, rand: g.env.Rand})
	if err != nil {
		return nil, err
	}
	prov := GroupContext{Version: g.ctx.Version, CipherSuite: g.ctx.CipherSuite, GroupID: g.ctx.GroupID,
		Epoch: g.ctx.Epoch + 1, TreeHash: tree.treeHash(), ConfirmedTranscriptHash: g.ctx.ConfirmedTranscriptHash,
		Extensions: eff.extensions}
	provBytes, err := prov.Marshal()
	if err != nil {
		return nil, err
	}
	up, err := pp.encrypt(provBytes)
	if err != nil {
		return nil, err
	}

	wf := WireFormatPublicMessage
	if g.cfg.PrivateHandshakes {
		wf = WireFormatPrivateMessage
	}
	fc := &FramedContent{GroupID: g.ctx.GroupID, Epoch: g.ctx.Epoch, Sender: self, AuthenticatedData: o.AuthenticatedData,
		ContentType: ContentTypeCommit, Commit: &Commit{Proposals: list, Path: up}}
	ac, err := signContent(g.cs, wf, fc, g.ctxBytes, g.signer)
	if err != nil {
		return nil, err
	}
	newCtx := prov
	if newCtx.ConfirmedTranscriptHash, err = g.cs.confirmedTranscriptHashOf(g.interim, ac, g.ctxBytes); err != nil {
		return nil, err
	}
	newCtxBytes, err := newCtx.Marshal()
	if err != nil {
		return nil, err
	}
	secrets := g.cs.deriveEpochSecrets(g.secrets.initSecret, pp.commitSecret(), pskSecret, newCtxBytes)
	tag := g.cs.confirmationTag(secrets.confirmationKey, newCtx.ConfirmedTranscriptHash)
	ac.Auth.ConfirmationTag = tag
	interim := g.cs.interimTranscriptHash(newCtx.ConfirmedTranscriptHash, tag)

	msg := &MLSMessage{Version: ProtocolVersionMLS10, WireFormat: wf}
	if wf == WireFormatPublicMessage {
		if msg.PublicMessage, err = protectPublic(g.cs, ac, g.ctxBytes, g.secrets.membershipKey); err != nil {
			return nil, err
		}
	} else if msg.PrivateMessage, err = protectPrivate(g.cs, ac, g.stree, g.secrets.senderDataSecret, g.cfg.PadTo); err != nil {
		return nil, err
	}

	next, err := newGroupState(g.cs, newCtx, tree, pp.private(), g.sigPriv, g.signer, secrets, interim, tag, g.cfg, g.env, g.resumption)
	if err != nil {
		return nil, err
	}
	next.parent.Store(g)
	next.reinit = eff.reinit
	next.pending.Store(true)
	pc := &PendingCommit{Commit: msg, State: next}
	if len(eff.added) > 0 {
		gi, err := next.groupInfo()
		if err != nil {
			return nil, err
		}
		pc.gi = gi
		recips := make([]welcomeRecipient, len(eff.added))
		for i, l := range eff.added {
			ps, err := pp.pathSecretFor(l)
			if err != nil {
				return nil, err
			}
			recips[i] = welcomeRecipient{keyPackage: eff.addedKPs[i],
				secrets: &groupSecrets{JoinerSecret: secrets.joinerSecret, PathSecret: ps, PSKs: eff.psks}}
		}
		w, err := sealWelcome(g.cs, gi, secrets.joinerSecret, pskSecret, recips)
		if err != nil {
			return nil, err
		}
		pc.Welcome = &MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatWelcome, Welcome: w}
	}
	pc.Result = commitResult(self, aps, eff, next)
	return pc, nil
}

func commitResult(committer Sender, aps []appliedProposal, eff *proposalEffect, next *Group) *CommitResult {
	r := &CommitResult{Committer: committer, Removed: eff.removed, SelfRemoved: eff.selfRemoved, State: next, ReInit: eff.reinit}
	for _, ap := range aps {
		r.Proposals = append(r.Proposals, *ap.proposal)
	}
	for _, l := range eff.added {
		r.Added = append(r.Added, LeafIndex(l))
	}
	if next != nil {
		r.Epoch = next.ctx.Epoch
	}
	return r
}

// groupInfo builds and signs the epoch's GroupInfo (with external_pub, and the ratchet tree
// unless the configuration omits it).
func (g *Group) groupInfo() (*GroupInfo, error) {
	_, extPub, err := g.cs.externalKeyPair(g.secrets.externalSecret)
	if err != nil {
		return nil, err
	}
	var exts Extensions
	if !g.cfg.OmitRatchetTree {
		rt, err := g.tree.wire().Encode()
		if err != nil {
			return nil, err
		}
		exts = append(exts, Extension{Type: ExtensionRatchetTree, Data: rt})
	}
	exts = append(exts, Extension{Type: ExtensionExternalPub, Data: tlsOpaque(extPub)})
	gi := &GroupInfo{GroupContext: g.ctx, Extensions: exts, ConfirmationTag: g.confTag, Signer: uint32(g.priv.leaf())}
	if err := signGroupInfo(g.cs, gi, g.signer); err != nil {
		return nil, err
	}
	return gi, nil
}

// GroupInfo returns a signed GroupInfo of the current epoch as an MLSMessage, for external joins.
func (g *Group) GroupInfo() (*MLSMessage, error) {
	gi, err := g.groupInfo()
	if err != nil {
		return nil, err
	}
	return &MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatGroupInfo, GroupInfo: gi}, nil
}

// processCommit applies a verified commit from sender (RFC 9420 §12.4.2) and returns the new state.
func (g *Group) processCommit(ac *authenticatedContent, store PSKStore, appData AppDataUpdater) (*CommitResult, error) {
	sender := ac.Content.Sender
	if sender.Type == SenderTypeMember && leafIndex(sender.Index) == g.priv.leaf() {
		return nil, ErrOwnCommit
	}
	pc, err := g.applyCommit(ac, g.priv.leaf(), appData)
	if err != nil {
		return nil, err
	}
	if pc.eff.selfRemoved {
		r := commitResult(sender, pc.aps, pc.eff, nil)
		r.Epoch = g.ctx.Epoch + 1
		return r, nil
	}
	c := ac.Content.Commit
	var commitSecret []byte
	priv := g.priv.prune(pc.tree)
	if up := g.updateKeysApply(pc.tree); up != nil {
		priv = up
	}
	if c.Path != nil {
		provBytes, err := pc.provisional.Marshal()
		if err != nil {
			return nil, err
		}
		res, err := priv.decryptPath(pc.tree, pc.committer, c.Path, pc.eff.added, provBytes)
		if err != nil {
			return nil, err
		}
		priv, commitSecret = res.priv, res.commitSecret
	}
	psks, err := g.pskInputs(pc.eff.psks, store)
	if err != nil {
		return nil, err
	}
	pskSecret, err := g.cs.pskSecret(psks)
	if err != nil {
		return nil, err
	}
	initSecret := g.secrets.initSecret
	if pc.eff.externalInit != nil {
		extPriv, _, err := g.cs.externalKeyPair(g.secrets.externalSecret)
		if err != nil {
			return nil, err
		}
		if initSecret, err = g.cs.externalInitSecret(extPriv, pc.eff.externalInit); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidCommit, err)
		}
	}
	newCtxBytes, err := pc.next.Marshal()
	if err != nil {
		return nil, err
	}
	secrets := g.cs.deriveEpochSecrets(initSecret, commitSecret, pskSecret, newCtxBytes)
	if !g.cs.verifyConfirmationTag(secrets.confirmationKey, pc.next.ConfirmedTranscriptHash, ac.Auth.ConfirmationTag) {
		return nil, fmt.Errorf("%w: confirmation tag does not verify", ErrInvalidCommit)
	}
	next, err := newGroupState(g.cs, pc.next, pc.tree, priv, g.sigPriv, g.signer, secrets, pc.interim, slices.Clone(ac.Auth.ConfirmationTag), g.cfg, g.env, g.resumption)
	if err != nil {
		return nil, err
	}
	next.reinit = pc.eff.reinit
	return commitResult(sender, pc.aps, pc.eff, next), nil
}

// appliedCommit is the public outcome of a commit: what every member and a PublicGroup compute
// alike, before (for members) the key schedule.
type appliedCommit struct {
	aps         []appliedProposal
	eff         *proposalEffect
	tree        *ratchetTree // the new epoch's tree (proposals and path merged)
	committer   leafIndex    // the committer's leaf in tree
	provisional GroupContext // the provisional GroupContext the path secrets were encrypted to
	next        GroupContext // the new epoch's GroupContext
	interim     []byte       // the new epoch's interim transcript hash
}

// applyCommit applies the public part of a commit (RFC 9420 §12.4.2) whose signature is verified
// (for a new_member_commit sender it verifies it here, with the path's leaf key): it resolves,
// validates and applies the proposals, places an external committer, validates and merges the
// UpdatePath's public keys (leaf signature and parent hashes), and computes the new tree hash and
// transcript hashes. self is the processing member's leaf (noLeaf for a PublicGroup); when the
// commit removes it, applyCommit stops after the proposals with eff.selfRemoved set. g is unchanged.
func (g *publicState) applyCommit(ac *authenticatedContent, self leafIndex, appData AppDataUpdater) (*appliedCommit, error) {
	fc := &ac.Content
	c := fc.Commit
	if c == nil {
		return nil, fmt.Errorf("%w: no commit body", ErrInvalidCommit)
	}
	sender := fc.Sender
	if sender.Type != SenderTypeMember && sender.Type != SenderTypeNewMemberCommit {
		return nil, fmt.Errorf("%w: commit from a %s sender", ErrInvalidCommit, sender.Type)
	}
	aps, err := g.resolveProposals(c.Proposals, sender)
	if err != nil {
		return nil, err
	}
	if err := g.validateProposals(aps, sender); err != nil {
		return nil, err
	}
	tree := g.tree.clone()
	eff, err := g.applyProposals(tree, aps, sender, self, appData)
	if err != nil {
		return nil, err
	}
	if eff.pathRequired && c.Path == nil {
		return nil, fmt.Errorf("%w: the proposals require an UpdatePath", ErrInvalidCommit)
	}
	if sender.Type == SenderTypeNewMemberCommit && c.Path == nil {
		return nil, fmt.Errorf("%w: external commit without an UpdatePath", ErrInvalidCommit)
	}
	out := &appliedCommit{aps: aps, eff: eff, tree: tree}
	if eff.selfRemoved {
		return out, nil
	}
	committer := leafIndex(sender.Index)
	if sender.Type == SenderTypeNewMemberCommit {
		committer = nextAddIndex(tree)
		if err := tree.validateLeafNode(&c.Path.LeafNode, committer, &leafCheck{groupID: g.ctx.GroupID, extensions: eff.extensions, source: LeafNodeSourceCommit}); err != nil {
			return nil, fmt.Errorf("%w: external committer: %w", ErrInvalidCommit, err)
		}
		// The joiner's leaf takes the leftmost free slot; mergeUpdatePath then replaces it with
		// the path's leaf (the placeholder only needs a different encryption key).
		placeholder := c.Path.LeafNode
		placeholder.EncryptionKey = nil
		if got := tree.addLeaf(&placeholder); got != committer {
			return nil, fmt.Errorf("%w: external committer leaf %d, expected %d", ErrInvalidCommit, got, committer)
		}
	}
	out.committer = committer
	prov := GroupContext{Version: g.ctx.Version, CipherSuite: g.ctx.CipherSuite, GroupID: g.ctx.GroupID,
		Epoch: g.ctx.Epoch + 1, ConfirmedTranscriptHash: g.ctx.ConfirmedTranscriptHash, Extensions: eff.extensions}
	if c.Path != nil {
		if sender.Type == SenderTypeMember {
			if err := tree.validateLeafNode(&c.Path.LeafNode, committer, &leafCheck{groupID: g.ctx.GroupID, extensions: eff.extensions, source: LeafNodeSourceCommit, skipSignature: true}); err != nil {
				return nil, fmt.Errorf("%w: committer leaf: %w", ErrInvalidCommit, err)
			}
		}
		if err := tree.mergeUpdatePath(committer, c.Path, g.ctx.GroupID); err != nil {
			return nil, err
		}
	}
	prov.TreeHash = tree.treeHash()
	out.provisional = prov
	if sender.Type == SenderTypeNewMemberCommit {
		// The signature of an external commit is verified with the key of the path's leaf.
		if err := verifyContent(g.cs, ac, g.ctxBytes, c.Path.LeafNode.SignatureKey); err != nil {
			return nil, err
		}
	}
	confirmed, interim, err := g.cs.nextTranscriptHashes(g.interim, ac, g.ctxBytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCommit, err)
	}
	out.next = prov
	out.next.ConfirmedTranscriptHash = confirmed
	out.interim = interim
	return out, nil
}

// updateKeysApply returns the private state with the member's leaf key replaced when an Update
// proposal the member sent was committed (its leaf in tree carries one of updateKeys), or nil.
func (g *Group) updateKeysApply(tree *ratchetTree) *treePrivate {
	g.mu.Lock()
	keys := slices.Clone(g.updateKeys)
	g.mu.Unlock()
	ln := tree.leaf(g.priv.leaf())
	if ln == nil {
		return nil
	}
	for _, k := range keys {
		if bytes.Equal(k.pub, ln.EncryptionKey) {
			p := newTreePrivate(g.priv.leaf(), k.priv, k.pub)
			return p
		}
	}
	return nil
}

// tlsOpaque encodes b as an opaque<V>.
func tlsOpaque(b []byte) []byte {
	out := appendVarint(nil, len(b))
	return append(out, b...)
}
