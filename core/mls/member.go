package mls

// The member API: what the gateway calls to act as an MLS member (RFC 9420 §10–§14).

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

// Signer is a member's signature key pair for one cipher suite.
type Signer struct {
	CipherSuite CipherSuite
	Private     []byte // the suite's private key encoding (Ed25519 seed, ECDSA scalar, ...)
	Public      []byte
}

// GenerateSigner makes a fresh signature key pair for cs.
func GenerateSigner(cs CipherSuite) (*Signer, error) {
	s, err := cs.impl()
	if err != nil {
		return nil, err
	}
	priv, pub, err := s.generateSignatureKeyPair(nil)
	if err != nil {
		return nil, err
	}
	return &Signer{CipherSuite: cs, Private: priv, Public: pub}, nil
}

// KeyPackageOptions tune a KeyPackage.
type KeyPackageOptions struct {
	// Lifetime of the KeyPackage; zero means 90 days from now (minus an hour of clock skew).
	Lifetime time.Duration
	// LastResort marks the KeyPackage as a last-resort one (mls-extensions-10: the
	// last_resort_key_package component in an app_data_dictionary KeyPackage extension).
	LastResort bool
	// Capabilities, when set, are the leaf's capabilities exactly (they must list version mls10,
	// the signer's cipher suite, the credential's type and the leaf's extensions); nil advertises
	// DefaultCapabilities.
	Capabilities *Capabilities
	// LeafExtensions are extensions of the leaf node.
	LeafExtensions Extensions
	// Group, when set, is the GroupContext of the group the KeyPackage is made for: the leaf is
	// checked against its cipher suite, required_capabilities and extensions before anything is
	// signed, and refused with ErrCapabilities when it would not be accepted there.
	Group *GroupContext
	// Env is the time (the lifetime's start) and randomness (the HPKE keys) to use.
	Env Env
}

// KeyPackagePrivate is the private part of a KeyPackage: keep it (encrypted at rest) until the
// KeyPackage is used in a Welcome, then delete it unless the KeyPackage is last-resort.
type KeyPackagePrivate struct {
	InitPrivate       []byte
	EncryptionPrivate []byte
}

// Extension and component code points of draft-ietf-mls-extensions-10 (suggested values).
const (
	// ExtensionAppDataDictionary is the app_data_dictionary extension.
	ExtensionAppDataDictionary ExtensionType = 0x0006
	componentLastResort        uint16        = 0x0004
)

// NewKeyPackage makes a signed KeyPackage with a basic or X.509 credential for signer.
func NewKeyPackage(signer *Signer, cred Credential, o KeyPackageOptions) (*KeyPackage, *KeyPackagePrivate, error) {
	s, err := signer.CipherSuite.impl()
	if err != nil {
		return nil, nil, err
	}
	initPriv, initPub, err := s.generateKEMKeyPair(o.Env.Rand)
	if err != nil {
		return nil, nil, err
	}
	encPriv, encPub, err := s.generateKEMKeyPair(o.Env.Rand)
	if err != nil {
		return nil, nil, err
	}
	life := o.Lifetime
	if life <= 0 {
		life = 90 * 24 * time.Hour
	}
	caps, err := leafCapabilities(o.Capabilities, signer.CipherSuite, cred.Type, o.LeafExtensions)
	if err != nil {
		return nil, nil, err
	}
	t := o.Env.now()
	kp := &KeyPackage{
		Version:     ProtocolVersionMLS10,
		CipherSuite: signer.CipherSuite,
		InitKey:     initPub,
		LeafNode: LeafNode{
			EncryptionKey: encPub,
			SignatureKey:  signer.Public,
			Credential:    cred,
			Capabilities:  caps,
			Source:        LeafNodeSourceKeyPackage,
			Lifetime:      Lifetime{NotBefore: uint64(max(0, t.Add(-time.Hour).Unix())), NotAfter: uint64(t.Add(life).Unix())},
			Extensions:    o.LeafExtensions,
		},
	}
	if o.LastResort {
		var w tlspl.Writer
		w.Vector(func(w *tlspl.Writer) { w.Uint16(componentLastResort); w.Opaque(nil) })
		d, err := w.Bytes()
		if err != nil {
			return nil, nil, err
		}
		kp.Extensions = Extensions{{Type: ExtensionAppDataDictionary, Data: d}}
	}
	if o.Group != nil {
		if o.Group.CipherSuite != signer.CipherSuite {
			return nil, nil, fmt.Errorf("mls: KeyPackage of %v for a group of %v", signer.CipherSuite, o.Group.CipherSuite)
		}
		if err := checkOwnLeaf(nil, &kp.LeafNode, 0, o.Group.CipherSuite, o.Group.Extensions); err != nil {
			return nil, nil, fmt.Errorf("mls: KeyPackage for group %x: %w", o.Group.GroupID, err)
		}
	}
	if err := signKeyPackage(s, kp, signer.Private); err != nil {
		return nil, nil, err
	}
	return kp, &KeyPackagePrivate{InitPrivate: initPriv, EncryptionPrivate: encPriv}, nil
}

// IsLastResort reports whether kp carries the last_resort_key_package component.
func (kp *KeyPackage) IsLastResort() bool {
	d, ok := kp.Extensions.Find(ExtensionAppDataDictionary)
	if !ok {
		return false
	}
	r := tlspl.NewReader(d)
	found := false
	r.ForEach(func(r *tlspl.Reader) {
		if r.Uint16() == componentLastResort {
			found = true
		}
		r.Opaque()
	})
	return found && r.Finish() == nil
}

func signKeyPackage(s *suite, kp *KeyPackage, sigPriv []byte) error {
	leafTBS, err := kp.LeafNode.TBS(nil, 0)
	if err != nil {
		return err
	}
	if kp.LeafNode.Signature, err = s.signWithLabel(sigPriv, labelLeafNodeTBS, leafTBS); err != nil {
		return err
	}
	tbs, err := kp.TBS()
	if err != nil {
		return err
	}
	kp.Signature, err = s.signWithLabel(sigPriv, labelKeyPackageTBS, tbs)
	return err
}

// GroupOptions tune a new group.
type GroupOptions struct {
	// Extensions are the GroupContext extensions of the new group.
	Extensions Extensions
	// Config is the sending configuration.
	Config Config
	// Capabilities, when set, are the creator's leaf capabilities exactly (as for
	// KeyPackageOptions.Capabilities); nil advertises DefaultCapabilities.
	Capabilities *Capabilities
	// Env is the group's time and randomness, handed on to its later epochs.
	Env Env
}

// CreateGroup creates a one-member group with ID groupID (RFC 9420 §11): epoch 0, the creator at
// leaf 0.
func CreateGroup(groupID []byte, signer *Signer, cred Credential, o GroupOptions) (*Group, error) {
	s, err := signer.CipherSuite.impl()
	if err != nil {
		return nil, err
	}
	if len(groupID) == 0 || len(groupID) > 255 {
		return nil, fmt.Errorf("mls: group ID of %d bytes", len(groupID))
	}
	encPriv, encPub, err := s.generateKEMKeyPair(o.Env.Rand)
	if err != nil {
		return nil, err
	}
	sk, err := s.parseSigningKey(signer.Private)
	if err != nil {
		return nil, err
	}
	caps, err := leafCapabilities(o.Capabilities, signer.CipherSuite, cred.Type, nil)
	if err != nil {
		return nil, err
	}
	ln := &LeafNode{EncryptionKey: encPub, SignatureKey: signer.Public, Credential: cred, Capabilities: caps,
		Source: LeafNodeSourceKeyPackage, Lifetime: Lifetime{NotBefore: 0, NotAfter: math.MaxUint64}}
	if err := checkOwnLeaf(nil, ln, 0, signer.CipherSuite, o.Extensions); err != nil {
		return nil, fmt.Errorf("mls: create group: %w", err)
	}
	tbs, err := ln.TBS(nil, 0)
	if err != nil {
		return nil, err
	}
	if ln.Signature, err = s.signWithLabelKey(sk, labelLeafNodeTBS, tbs); err != nil {
		return nil, err
	}
	tree := newRatchetTree(s, ln)
	ctx := GroupContext{Version: ProtocolVersionMLS10, CipherSuite: signer.CipherSuite, GroupID: slices.Clone(groupID),
		Epoch: 0, TreeHash: tree.treeHash(), ConfirmedTranscriptHash: nil, Extensions: o.Extensions}
	ctxBytes, err := ctx.Marshal()
	if err != nil {
		return nil, err
	}
	initSecret, err := randomBytes(o.Env.Rand, s.nh)
	if err != nil {
		return nil, err
	}
	secrets := s.deriveEpochSecrets(initSecret, nil, nil, ctxBytes)
	zero(initSecret)
	tag := s.confirmationTag(secrets.confirmationKey, ctx.ConfirmedTranscriptHash)
	interim := s.interimTranscriptHash(ctx.ConfirmedTranscriptHash, tag)
	return newGroupState(s, ctx, tree, newTreePrivate(0, encPriv, encPub), signer.Private, sk, secrets, interim, tag, o.Config, o.Env, nil)
}

// JoinOptions tune joining by Welcome or external commit.
type JoinOptions struct {
	// RatchetTree is the group's tree when the GroupInfo carries no ratchet_tree extension.
	RatchetTree RatchetTree
	// PSKStore resolves the external PSKs the Welcome uses.
	PSKStore PSKStore
	// Resumption is the joiner's state of an earlier group whose resumption PSKs the Welcome may
	// use: the last epoch of a group a ReInit commit ended (the Welcome is then accepted only for
	// the group the ReInit names), the group a branch came from, or an earlier epoch of this
	// group. It is only read.
	Resumption *Group
	// Config is the sending configuration.
	Config Config
	// Env is the group's time and randomness, handed on to its later epochs.
	Env Env
}

// JoinFromWelcome joins a group from a Welcome addressed to kp (RFC 9420 §12.4.3.1). signer must
// be the KeyPackage's signature key pair.
func JoinFromWelcome(w *Welcome, kp *KeyPackage, kpPriv *KeyPackagePrivate, signer *Signer, o JoinOptions) (*Group, error) {
	g, _, err := joinWelcome(w, Joiner{KeyPackage: kp, Private: kpPriv, Signer: signer}, o, nil)
	return g, err
}

// welcomeEpoch is what joiners of one Welcome share: the GroupInfo (encrypted under a key from
// the joiner and PSK secrets) and its validated tree.
type welcomeEpoch struct {
	joinerSecret, pskSecret []byte
	gi                      *GroupInfo
	tree                    *ratchetTree
}

// joinWelcome joins with j; a joiner of prev's epoch (the same joiner and PSK secrets, hence the
// same GroupInfo) reuses its validated tree.
func joinWelcome(w *Welcome, j Joiner, o JoinOptions, prev *welcomeEpoch) (*Group, *welcomeEpoch, error) {
	kp, kpPriv, signer := j.KeyPackage, j.Private, j.Signer
	s, err := w.CipherSuite.impl()
	if err != nil {
		return nil, nil, err
	}
	if kp.CipherSuite != w.CipherSuite || signer.CipherSuite != w.CipherSuite {
		return nil, nil, fmt.Errorf("mls: Welcome of %v for a KeyPackage of %v", w.CipherSuite, kp.CipherSuite)
	}
	ref, err := kp.Ref()
	if err != nil {
		return nil, nil, err
	}
	gs, err := openGroupSecrets(s, w, ref, kpPriv.InitPrivate)
	if err != nil {
		return nil, nil, err
	}
	psks, err := o.Resumption.pskInputs(gs.PSKs, o.PSKStore)
	if err != nil {
		return nil, nil, err
	}
	pskSecret, err := s.pskSecret(psks)
	if err != nil {
		return nil, nil, err
	}
	ep := prev
	if ep == nil || !bytes.Equal(ep.joinerSecret, gs.JoinerSecret) || !bytes.Equal(ep.pskSecret, pskSecret) {
		gi, err := openGroupInfo(s, w, gs.JoinerSecret, pskSecret)
		if err != nil {
			return nil, nil, err
		}
		tree, err := verifiedGroupInfoTree(s, gi, o.RatchetTree)
		if err != nil {
			return nil, nil, err
		}
		ep = &welcomeEpoch{joinerSecret: gs.JoinerSecret, pskSecret: pskSecret, gi: gi, tree: tree}
	}
	gi, tree := ep.gi, ep.tree
	if err := checkResumptionJoin(&gi.GroupContext, gs.PSKs, o.Resumption); err != nil {
		return nil, nil, err
	}
	self, ok := tree.findLeaf(func(_ leafIndex, ln *LeafNode) bool {
		return bytes.Equal(ln.EncryptionKey, kp.LeafNode.EncryptionKey) && bytes.Equal(ln.SignatureKey, kp.LeafNode.SignatureKey)
	})
	if !ok {
		return nil, nil, fmt.Errorf("%w: the KeyPackage's leaf is not in the tree", ErrInvalidTree)
	}
	priv := newTreePrivate(self, kpPriv.EncryptionPrivate, kp.LeafNode.EncryptionKey)
	if gs.PathSecret != nil {
		if priv, err = priv.withPathSecret(tree, leafIndex(gi.Signer), gs.PathSecret); err != nil {
			return nil, nil, err
		}
	}
	ctx := gi.GroupContext
	ctxBytes, err := ctx.Marshal()
	if err != nil {
		return nil, nil, err
	}
	secrets := s.epochSecretsFromJoiner(gs.JoinerSecret, pskSecret, ctxBytes)
	if !s.verifyConfirmationTag(secrets.confirmationKey, ctx.ConfirmedTranscriptHash, gi.ConfirmationTag) {
		return nil, nil, fmt.Errorf("%w: Welcome confirmation tag does not verify", ErrInvalidCommit)
	}
	interim := s.interimTranscriptHash(ctx.ConfirmedTranscriptHash, gi.ConfirmationTag)
	g, err := newGroupState(s, ctx, tree, priv, signer.Private, nil, secrets, interim, gi.ConfirmationTag, o.Config, o.Env, nil)
	if err != nil {
		return nil, ep, err
	}
	g.welcomeSigner = uint64(gi.Signer) + 1
	return g, ep, nil
}

// treeFromGroupInfo takes the ratchet tree from the GroupInfo's extension or out of band and
// validates it against the GroupContext.
func treeFromGroupInfo(s *suite, gi *GroupInfo, outOfBand RatchetTree) (*ratchetTree, error) {
	rt := outOfBand
	if d, ok := gi.Extensions.Find(ExtensionRatchetTree); ok {
		var err error
		if rt, err = DecodeRatchetTree(d); err != nil {
			return nil, err
		}
	}
	if rt == nil {
		return nil, fmt.Errorf("%w: no ratchet tree in the GroupInfo and none supplied", ErrInvalidTree)
	}
	tree, err := ratchetTreeFromWire(s, rt)
	if err != nil {
		return nil, err
	}
	if err := tree.validate(&treeCheck{groupID: gi.GroupContext.GroupID, treeHash: gi.GroupContext.TreeHash,
		extensions: gi.GroupContext.Extensions}); err != nil {
		return nil, err
	}
	return tree, nil
}

// verifiedGroupInfoTree returns the validated tree of gi (treeFromGroupInfo) after verifying gi's
// signature with its signer's leaf in that tree.
func verifiedGroupInfoTree(s *suite, gi *GroupInfo, outOfBand RatchetTree) (*ratchetTree, error) {
	tree, err := treeFromGroupInfo(s, gi, outOfBand)
	if err != nil {
		return nil, err
	}
	if err := verifyGroupInfoSigner(s, gi, tree); err != nil {
		return nil, err
	}
	return tree, nil
}

// verifyGroupInfoSigner verifies gi's signature with the key of its signer's leaf in tree.
func verifyGroupInfoSigner(s *suite, gi *GroupInfo, tree *ratchetTree) error {
	if !tree.inRange(leafIndex(gi.Signer)) || tree.leaf(leafIndex(gi.Signer)) == nil {
		return fmt.Errorf("%w: GroupInfo signer %d is not a member", ErrInvalidTree, gi.Signer)
	}
	return verifyGroupInfo(s, gi, tree.leaf(leafIndex(gi.Signer)).SignatureKey)
}

// ExternalJoinOptions tune an external join.
type ExternalJoinOptions struct {
	// RatchetTree is the group's tree when the GroupInfo carries no ratchet_tree extension.
	RatchetTree RatchetTree
	// Config is the sending configuration.
	Config Config
	// Capabilities, when set, are the new leaf's capabilities exactly (as for
	// KeyPackageOptions.Capabilities); nil advertises DefaultCapabilities.
	Capabilities *Capabilities
	// Env is the group's time and randomness, handed on to its later epochs.
	Env Env
	// SelfRemoves are SelfRemove proposals of the GroupInfo's epoch (PublicMessages, as the hub
	// hands out the room's pending proposals): the external commit commits them by reference, so
	// the members who asked to leave are removed before the joiner takes a leaf. Each must verify
	// with its sender's leaf; any other proposal is refused.
	SelfRemoves []*MLSMessage
}

// ExternalJoin joins the group of a GroupInfo by an external commit (RFC 9420 §12.4.3.2). It
// returns the commit to send and the member's state in the new epoch; like a PendingCommit, the
// state is valid only once the delivery service accepted the commit. The new leaf is checked
// against the group (required_capabilities, the other members' credential types, key uniqueness)
// before anything is signed: a leaf the members would reject fails here with ErrCapabilities or
// ErrInvalidLeafNode.
func ExternalJoin(giMsg *GroupInfo, signer *Signer, cred Credential, o ExternalJoinOptions) (*PendingCommit, error) {
	gi := giMsg
	s, err := gi.GroupContext.CipherSuite.impl()
	if err != nil {
		return nil, err
	}
	d, ok := gi.Extensions.Find(ExtensionExternalPub)
	if !ok {
		return nil, fmt.Errorf("%w: GroupInfo without external_pub", ErrMalformed)
	}
	r := tlspl.NewReader(d)
	extPub := r.Opaque()
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: external_pub: %w", ErrMalformed, err)
	}
	tree, err := verifiedGroupInfoTree(s, gi, o.RatchetTree)
	if err != nil {
		return nil, err
	}
	kemOutput, initSecret, err := s.externalInit(extPub)
	if err != nil {
		return nil, err
	}
	props := []ProposalOrRef{{Type: ProposalOrRefProposal, Proposal: &Proposal{Type: ProposalTypeExternalInit, KEMOutput: kemOutput}}}
	if len(o.SelfRemoves) > 0 {
		if tree, props, err = externalSelfRemoves(s, gi, tree, props, o.SelfRemoves); err != nil {
			return nil, err
		}
	}
	sk, err := s.parseSigningKey(signer.Private)
	if err != nil {
		return nil, err
	}
	// A placeholder leaf (replaced by the path's leaf) takes the leftmost free slot.
	tmpPriv, tmpPub, err := s.generateKEMKeyPair(o.Env.Rand)
	if err != nil {
		return nil, err
	}
	_ = tmpPriv
	caps, err := leafCapabilities(o.Capabilities, s.id, cred.Type, nil)
	if err != nil {
		return nil, err
	}
	template := &LeafNode{EncryptionKey: tmpPub, SignatureKey: signer.Public, Credential: cred,
		Capabilities: caps, Source: LeafNodeSourceKeyPackage, Lifetime: Lifetime{NotBefore: 0, NotAfter: math.MaxUint64}}
	if err := checkOwnLeaf(tree, template, nextAddIndex(tree), s.id, gi.GroupContext.Extensions); err != nil {
		return nil, fmt.Errorf("mls: external join: %w", err)
	}
	self := tree.addLeaf(template)
	pp, err := tree.applyNewPath(pathOptions{groupID: gi.GroupContext.GroupID, leaf: self, template: template, signer: sk, rand: o.Env.Rand})
	if err != nil {
		return nil, err
	}
	old := gi.GroupContext
	prov := GroupContext{Version: old.Version, CipherSuite: old.CipherSuite, GroupID: old.GroupID, Epoch: old.Epoch + 1,
		TreeHash: tree.treeHash(), ConfirmedTranscriptHash: old.ConfirmedTranscriptHash, Extensions: old.Extensions}
	provBytes, err := prov.Marshal()
	if err != nil {
		return nil, err
	}
	up, err := pp.encrypt(provBytes)
	if err != nil {
		return nil, err
	}
	fc := &FramedContent{GroupID: old.GroupID, Epoch: old.Epoch, Sender: Sender{Type: SenderTypeNewMemberCommit},
		ContentType: ContentTypeCommit, Commit: &Commit{Proposals: props, Path: up}}
	oldBytes, err := old.Marshal()
	if err != nil {
		return nil, err
	}
	ac, err := signContent(s, WireFormatPublicMessage, fc, oldBytes, sk)
	if err != nil {
		return nil, err
	}
	interimBefore := s.interimTranscriptHash(old.ConfirmedTranscriptHash, gi.ConfirmationTag)
	newCtx := prov
	if newCtx.ConfirmedTranscriptHash, err = s.confirmedTranscriptHashOf(interimBefore, ac, oldBytes); err != nil {
		return nil, err
	}
	newCtxBytes, err := newCtx.Marshal()
	if err != nil {
		return nil, err
	}
	secrets := s.deriveEpochSecrets(initSecret, pp.commitSecret(), nil, newCtxBytes)
	tag := s.confirmationTag(secrets.confirmationKey, newCtx.ConfirmedTranscriptHash)
	ac.Auth.ConfirmationTag = tag
	interim := s.interimTranscriptHash(newCtx.ConfirmedTranscriptHash, tag)
	pm := &PublicMessage{Content: ac.Content, Auth: ac.Auth}
	next, err := newGroupState(s, newCtx, tree, pp.private(), signer.Private, sk, secrets, interim, tag, o.Config, o.Env, nil)
	if err != nil {
		return nil, err
	}
	next.pending.Store(true)
	return &PendingCommit{Commit: &MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatPublicMessage, PublicMessage: pm},
		State: next, Result: &CommitResult{Committer: fc.Sender, Added: []LeafIndex{LeafIndex(self)}, Epoch: newCtx.Epoch, State: next}}, nil
}

// externalSelfRemoves checks SelfRemove proposals for an external commit into gi's epoch as the
// members will (signature by the sender's leaf, the proposal rules) and returns the tree with
// their senders removed and the commit's proposal list with their references appended.
func externalSelfRemoves(s *suite, gi *GroupInfo, tree *ratchetTree, props []ProposalOrRef, msgs []*MLSMessage) (*ratchetTree, []ProposalOrRef, error) {
	pg := new(PublicGroup)
	interim := s.interimTranscriptHash(gi.GroupContext.ConfirmedTranscriptHash, gi.ConfirmationTag)
	if err := pg.init(s, gi.GroupContext, tree, interim, gi.ConfirmationTag, nil, Env{}); err != nil {
		return nil, nil, err
	}
	for i, m := range msgs {
		r, err := pg.Process(m, ProcessOptions{})
		if err != nil {
			return nil, nil, fmt.Errorf("mls: external join: SelfRemove %d: %w", i, err)
		}
		if r.Kind != ReceivedProposal || r.Proposal.Type != ProposalTypeSelfRemove {
			return nil, nil, fmt.Errorf("%w: external join: proposal %d is not a SelfRemove", ErrInvalidProposal, i)
		}
		props = append(props, ProposalOrRef{Type: ProposalOrRefReference, Reference: r.ProposalRef})
	}
	committer := Sender{Type: SenderTypeNewMemberCommit}
	aps, err := pg.resolveProposals(props, committer)
	if err != nil {
		return nil, nil, err
	}
	if err := pg.validateProposals(aps, committer); err != nil {
		return nil, nil, err
	}
	next := tree.clone()
	if _, err := pg.applyProposals(next, aps, committer, noLeaf, nil); err != nil {
		return nil, nil, err
	}
	return next, props, nil
}

// Encrypt protects application data as a PrivateMessage of the current epoch, with the next
// generation of the member's application ratchet.
func (g *Group) Encrypt(data, authenticatedData []byte) (*MLSMessage, error) {
	if err := g.usable(); err != nil {
		return nil, err
	}
	fc := &FramedContent{GroupID: g.ctx.GroupID, Epoch: g.ctx.Epoch, Sender: Sender{Type: SenderTypeMember, Index: uint32(g.priv.leaf())},
		AuthenticatedData: authenticatedData, ContentType: ContentTypeApplication, ApplicationData: data}
	ac, err := signContent(g.cs, WireFormatPrivateMessage, fc, g.ctxBytes, g.signer)
	if err != nil {
		return nil, err
	}
	pm, err := protectPrivate(g.cs, ac, g.stree, g.secrets.senderDataSecret, g.cfg.PadTo)
	if err != nil {
		return nil, err
	}
	return &MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatPrivateMessage, PrivateMessage: pm}, nil
}

// propose signs and protects a proposal, caches it by reference and returns the message.
func (g *Group) propose(p *Proposal) (*MLSMessage, []byte, error) {
	if err := g.usable(); err != nil {
		return nil, nil, err
	}
	wf := WireFormatPublicMessage
	if g.cfg.PrivateHandshakes {
		wf = WireFormatPrivateMessage
	}
	self := Sender{Type: SenderTypeMember, Index: uint32(g.priv.leaf())}
	fc := &FramedContent{GroupID: g.ctx.GroupID, Epoch: g.ctx.Epoch, Sender: self, ContentType: ContentTypeProposal, Proposal: p}
	ac, err := signContent(g.cs, wf, fc, g.ctxBytes, g.signer)
	if err != nil {
		return nil, nil, err
	}
	ref, err := proposalRef(g.cs, ac)
	if err != nil {
		return nil, nil, err
	}
	msg := &MLSMessage{Version: ProtocolVersionMLS10, WireFormat: wf}
	if wf == WireFormatPublicMessage {
		msg.PublicMessage, err = protectPublic(g.cs, ac, g.ctxBytes, g.secrets.membershipKey)
	} else {
		msg.PrivateMessage, err = protectPrivate(g.cs, ac, g.stree, g.secrets.senderDataSecret, g.cfg.PadTo)
	}
	if err != nil {
		return nil, nil, err
	}
	if err := g.cacheProposal(cachedProposal{ref: ref, proposal: p, sender: self}); err != nil {
		return nil, nil, err
	}
	return msg, ref, nil
}

// ProposeAdd sends an Add proposal for kp; it is cached and included in this member's next commit.
func (g *Group) ProposeAdd(kp *KeyPackage) (*MLSMessage, error) {
	p := &Proposal{Type: ProposalTypeAdd, KeyPackage: kp}
	if err := g.validateProposals([]appliedProposal{{proposal: p, sender: Sender{Type: SenderTypeMember, Index: uint32(g.priv.leaf())}}}, Sender{Type: SenderTypeMember, Index: math.MaxUint32}); err != nil {
		return nil, err
	}
	m, _, err := g.propose(p)
	return m, err
}

// ProposeRemove sends a Remove proposal for leaf l.
func (g *Group) ProposeRemove(l LeafIndex) (*MLSMessage, error) {
	if !g.tree.inRange(leafIndex(l)) || g.tree.leaf(leafIndex(l)) == nil {
		return nil, fmt.Errorf("%w: leaf %d is blank", ErrInvalidProposal, l)
	}
	m, _, err := g.propose(&Proposal{Type: ProposalTypeRemove, Removed: uint32(l)})
	return m, err
}

// ProposeUpdate sends an Update proposal with a fresh leaf encryption key. Another member must
// commit it; a member's own commit refreshes its leaf anyway (Commit always has a path).
func (g *Group) ProposeUpdate() (*MLSMessage, error) {
	if err := g.usable(); err != nil {
		return nil, err
	}
	priv, pub, err := g.cs.generateKEMKeyPair(g.env.Rand)
	if err != nil {
		return nil, err
	}
	ln := *g.ownLeaf()
	ln.EncryptionKey = pub
	ln.Source = LeafNodeSourceUpdate
	ln.Lifetime = Lifetime{}
	ln.ParentHash = nil
	if err := checkOwnLeaf(g.tree, &ln, g.priv.leaf(), g.ctx.CipherSuite, g.ctx.Extensions); err != nil {
		return nil, fmt.Errorf("mls: update: %w", err)
	}
	tbs, err := ln.TBS(g.ctx.GroupID, uint32(g.priv.leaf()))
	if err != nil {
		return nil, err
	}
	if ln.Signature, err = g.cs.signWithLabelKey(g.signer, labelLeafNodeTBS, tbs); err != nil {
		return nil, err
	}
	g.mu.Lock()
	g.updateKeys = append(g.updateKeys, nodeKey{priv: priv, pub: pub})
	g.mu.Unlock()
	m, _, err := g.propose(&Proposal{Type: ProposalTypeUpdate, LeafNode: &ln})
	return m, err
}

// ReceivedKind says what a processed message was.
type ReceivedKind int

// Kinds of processed messages.
const (
	// ReceivedApplication is application data.
	ReceivedApplication ReceivedKind = iota + 1
	// ReceivedProposal is a proposal, now cached by reference.
	ReceivedProposal
	// ReceivedCommit is a commit; Commit.State is the new epoch's state.
	ReceivedCommit
)

// Received is the outcome of Process.
type Received struct {
	Kind ReceivedKind
	// Sender is the message's sender; Credential its credential (members and new members).
	Sender     Sender
	Credential *Credential
	// AuthenticatedData is the message's authenticated_data.
	AuthenticatedData []byte
	// ApplicationData and Generation are set for application messages.
	ApplicationData []byte
	Generation      uint32
	// Proposal and ProposalRef are set for proposals.
	Proposal    *Proposal
	ProposalRef []byte
	// Commit is set for commits.
	Commit *CommitResult
}

// ProcessOptions tune Process.
type ProcessOptions struct {
	// PSKStore resolves external PSKs a commit injects.
	PSKStore PSKStore
	// AppData computes new component values for AppDataUpdate proposals (nil: ReplaceAppData).
	AppData AppDataUpdater
}

// Process handles a PublicMessage or PrivateMessage of the group. Application data and proposals
// leave the state in this epoch (the proposal is cached by reference); a commit yields the next
// epoch's state in Received.Commit.State and leaves g unchanged. A message that fails any check
// is rejected with an error and changes nothing, except that a PrivateMessage's key is consumed
// once it decrypted.
func (g *Group) Process(m *MLSMessage, o ProcessOptions) (*Received, error) {
	if err := g.usable(); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("%w: nil message", ErrMalformed)
	}
	var ac *authenticatedContent
	var generation uint32
	switch m.WireFormat {
	case WireFormatPublicMessage:
		pm := m.PublicMessage
		if pm == nil {
			return nil, fmt.Errorf("%w: empty PublicMessage", ErrMalformed)
		}
		if !bytes.Equal(pm.Content.GroupID, g.ctx.GroupID) || pm.Content.Epoch != g.ctx.Epoch {
			return nil, fmt.Errorf("%w: PublicMessage for epoch %d, group is in epoch %d", ErrWrongGroup, pm.Content.Epoch, g.ctx.Epoch)
		}
		var err error
		if ac, err = unprotectPublic(g.cs, pm, &g.ctx, g.ctxBytes, g.secrets.membershipKey); err != nil {
			return nil, err
		}
	case WireFormatPrivateMessage:
		pm := m.PrivateMessage
		if pm == nil {
			return nil, fmt.Errorf("%w: empty PrivateMessage", ErrMalformed)
		}
		var err error
		if ac, err = unprotectPrivate(g.cs, pm, &g.ctx, g.stree, g.secrets.senderDataSecret); err != nil {
			return nil, err
		}
		generation = ac.generation
	default:
		return nil, fmt.Errorf("%w: %s is not a group message", ErrNotAllowed, m.WireFormat)
	}
	out, err := g.authenticate(ac)
	if err != nil {
		return nil, err
	}
	fc := &ac.Content
	switch fc.ContentType {
	case ContentTypeApplication:
		out.Kind = ReceivedApplication
		out.ApplicationData = fc.ApplicationData
		out.Generation = generation
	case ContentTypeProposal:
		if err := g.receiveProposal(ac, out); err != nil {
			return nil, err
		}
	case ContentTypeCommit:
		res, err := g.processCommit(ac, o.PSKStore, o.AppData)
		if err != nil {
			return nil, err
		}
		next := res.State
		if res.SelfRemoved {
			next = removedMark
		}
		if err := g.supersede(next); err != nil {
			return nil, err
		}
		out.Kind, out.Commit = ReceivedCommit, res
	default:
		return nil, fmt.Errorf("%w: content type %d", ErrUnknownEnum, fc.ContentType)
	}
	return out, nil
}

// authenticate finds the sender's signature key and verifies ac's signature with it (for a
// new_member_commit sender, applyCommit does once the path is known to be well-formed). It returns
// the Received with the sender fields set.
func (g *publicState) authenticate(ac *authenticatedContent) (*Received, error) {
	fc := &ac.Content
	out := &Received{Sender: fc.Sender, AuthenticatedData: fc.AuthenticatedData}
	var sigKey []byte
	switch fc.Sender.Type {
	case SenderTypeMember:
		l := leafIndex(fc.Sender.Index)
		if !g.tree.inRange(l) || g.tree.leaf(l) == nil {
			return nil, fmt.Errorf("%w: leaf %d", ErrUnknownSender, l)
		}
		ln := g.tree.leaf(l)
		sigKey = ln.SignatureKey
		out.Credential = &ln.Credential
	case SenderTypeNewMemberProposal:
		if fc.ContentType != ContentTypeProposal || fc.Proposal == nil || fc.Proposal.Type != ProposalTypeAdd || fc.Proposal.KeyPackage == nil {
			return nil, fmt.Errorf("%w: new_member_proposal sender with a non-Add", ErrNotAllowed)
		}
		sigKey = fc.Proposal.KeyPackage.LeafNode.SignatureKey
		out.Credential = &fc.Proposal.KeyPackage.LeafNode.Credential
	case SenderTypeNewMemberCommit:
		if fc.ContentType != ContentTypeCommit || fc.Commit == nil || fc.Commit.Path == nil {
			return nil, fmt.Errorf("%w: new_member_commit sender without a commit with a path", ErrNotAllowed)
		}
		out.Credential = &fc.Commit.Path.LeafNode.Credential
	case SenderTypeExternal:
		key, err := g.externalSenderKey(fc.Sender.Index)
		if err != nil {
			return nil, err
		}
		if fc.ContentType != ContentTypeProposal {
			return nil, fmt.Errorf("%w: external sender sent a %s", ErrNotAllowed, fc.ContentType)
		}
		sigKey = key
	default:
		return nil, fmt.Errorf("%w: sender type %d", ErrUnknownSender, fc.Sender.Type)
	}
	if sigKey != nil {
		if err := verifyContent(g.cs, ac, g.ctxBytes, sigKey); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// receiveProposal checks an authenticated proposal on its own, caches it by reference and fills
// out's proposal fields.
func (g *publicState) receiveProposal(ac *authenticatedContent, out *Received) error {
	fc := &ac.Content
	if fc.Proposal == nil {
		return fmt.Errorf("%w: empty proposal", ErrMalformed)
	}
	if err := g.checkStandaloneProposal(fc.Proposal, fc.Sender); err != nil {
		return err
	}
	ref, err := proposalRef(g.cs, ac)
	if err != nil {
		return err
	}
	if err := g.cacheProposal(cachedProposal{ref: ref, proposal: fc.Proposal, sender: fc.Sender}); err != nil {
		return err
	}
	out.Kind, out.Proposal, out.ProposalRef = ReceivedProposal, fc.Proposal, ref
	return nil
}

// checkStandaloneProposal runs the checks a proposal can pass on its own before it is cached.
func (g *publicState) checkStandaloneProposal(p *Proposal, sender Sender) error {
	switch p.Type {
	case ProposalTypeExternalInit:
		return fmt.Errorf("%w: ExternalInit sent as a standalone proposal", ErrInvalidProposal)
	case ProposalTypeUpdate:
		if sender.Type != SenderTypeMember {
			return fmt.Errorf("%w: Update from a %s sender", ErrInvalidProposal, sender.Type)
		}
	case ProposalTypeAdd, ProposalTypeRemove, ProposalTypePSK, ProposalTypeGroupContextExtensions, ProposalTypeReInit:
	default:
		return g.validateExtensionProposal(appliedProposal{proposal: p, sender: sender}, Sender{})
	}
	// The list checks with this proposal alone; the committer is nobody in particular.
	if err := g.validateProposals([]appliedProposal{{proposal: p, sender: sender}}, Sender{Type: SenderTypeMember, Index: math.MaxUint32}); err != nil {
		return err
	}
	// Leaf checks against the current tree (repeated at commit time against the tree then).
	switch p.Type {
	case ProposalTypeAdd:
		if err := g.tree.validateLeafNode(&p.KeyPackage.LeafNode, nextAddIndex(g.tree), &leafCheck{extensions: g.ctx.Extensions,
			source: LeafNodeSourceKeyPackage, skipSignature: true, checkLifetime: true, at: g.env.now()}); err != nil {
			return fmt.Errorf("%w: Add: %w", ErrInvalidProposal, err)
		}
	case ProposalTypeUpdate:
		if err := g.tree.validateLeafNode(p.LeafNode, leafIndex(sender.Index), &leafCheck{groupID: g.ctx.GroupID,
			extensions: g.ctx.Extensions, source: LeafNodeSourceUpdate}); err != nil {
			return fmt.Errorf("%w: Update: %w", ErrInvalidProposal, err)
		}
	}
	return nil
}

// externalSenderKey returns the signature key of external sender i (external_senders extension).
func (g *publicState) externalSenderKey(i uint32) ([]byte, error) {
	d, ok := g.ctx.Extensions.Find(ExtensionExternalSenders)
	if !ok {
		return nil, fmt.Errorf("%w: external sender %d but no external_senders extension", ErrUnknownSender, i)
	}
	senders, err := ParseExternalSenders(d)
	if err != nil {
		return nil, err
	}
	if int(i) >= len(senders) {
		return nil, fmt.Errorf("%w: external sender %d of %d", ErrUnknownSender, i, len(senders))
	}
	return senders[i].SignatureKey, nil
}

// PrivateMessageSender returns the sender's leaf and the generation of a PrivateMessage of the
// group's epoch, from its sender data alone: the content is neither decrypted nor verified, and
// the state does not change. A member can tell its own messages (which it cannot decrypt) from
// others' this way.
func (g *Group) PrivateMessageSender(pm *PrivateMessage) (LeafIndex, uint32, error) {
	if pm == nil {
		return 0, 0, fmt.Errorf("%w: empty PrivateMessage", ErrMalformed)
	}
	sd, err := g.peekSenderData(pm)
	if err != nil {
		return 0, 0, err
	}
	return LeafIndex(sd.LeafIndex), sd.Generation, nil
}

// peekSenderData decrypts a PrivateMessage's sender data.
func (g *Group) peekSenderData(pm *PrivateMessage) (*SenderData, error) {
	if !bytes.Equal(pm.GroupID, g.ctx.GroupID) || pm.Epoch != g.ctx.Epoch {
		return nil, fmt.Errorf("%w: PrivateMessage for epoch %d, group is in epoch %d", ErrWrongGroup, pm.Epoch, g.ctx.Epoch)
	}
	key, nonce := g.cs.senderDataKeyNonce(g.secrets.senderDataSecret, pm.Ciphertext)
	defer zero(key)
	aad, err := senderDataAAD(pm.GroupID, pm.Epoch, pm.ContentType)
	if err != nil {
		return nil, err
	}
	pt, err := g.cs.open(key, nonce, aad, pm.EncryptedSenderData)
	if err != nil {
		return nil, fmt.Errorf("mls: sender data: %w", err)
	}
	var sd SenderData
	if err := tlspl.Unmarshal(pt, &sd); err != nil {
		return nil, fmt.Errorf("mls: decode SenderData: %w", err)
	}
	return &sd, nil
}
