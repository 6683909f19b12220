package mls

// Proposal validation and application (RFC 9420 §12.2, §12.3, §12.4.2).

import (
	"bytes"
	"fmt"
	"slices"
)

// appliedProposal is one proposal of a commit with the sender that proposed it.
type appliedProposal struct {
	proposal *Proposal
	sender   Sender
	ref      []byte // nil for a proposal sent inline
}

// resolveProposals turns the commit's ProposalOrRef list into proposals, looking references up
// in the epoch's cache.
func (g *publicState) resolveProposals(list []ProposalOrRef, committer Sender) ([]appliedProposal, error) {
	out := make([]appliedProposal, 0, len(list))
	for i := range list {
		por := &list[i]
		switch por.Type {
		case ProposalOrRefProposal:
			if por.Proposal == nil {
				return nil, fmt.Errorf("%w: empty inline proposal %d", ErrInvalidCommit, i)
			}
			out = append(out, appliedProposal{proposal: por.Proposal, sender: committer})
		case ProposalOrRefReference:
			c, ok := g.lookupProposal(por.Reference)
			if !ok {
				return nil, fmt.Errorf("%w: unknown proposal reference %x", ErrInvalidCommit, por.Reference)
			}
			// An external committer may reference SelfRemove proposals (mls-extensions: a leaving
			// member's SelfRemove is committed by whoever commits next, an external joiner
			// included); RFC 9420 §12.4.3.2 allows no other proposal by reference.
			if committer.Type == SenderTypeNewMemberCommit && c.proposal.Type != ProposalTypeSelfRemove {
				return nil, fmt.Errorf("%w: external commit with a %s proposal by reference", ErrInvalidCommit, c.proposal.Type)
			}
			out = append(out, appliedProposal{proposal: c.proposal, sender: c.sender, ref: c.ref})
		default:
			return nil, fmt.Errorf("%w: ProposalOrRef type %d", ErrInvalidCommit, por.Type)
		}
	}
	return out, nil
}

// proposalEffect is the result of applying a commit's proposals to a tree.
type proposalEffect struct {
	extensions   Extensions // the new GroupContext extensions
	gce          bool       // a GroupContextExtensions proposal was applied
	added        []leafIndex
	addedKPs     []*KeyPackage
	removed      []Member
	psks         []PreSharedKeyID
	externalInit []byte // kem_output
	reinit       *ReInit
	pathRequired bool
	selfRemoved  bool
}

// validateProposals checks a commit's proposal list against RFC 9420 §12.2 (and §12.4.3.2 for
// external commits) without changing anything.
func (g *publicState) validateProposals(list []appliedProposal, committer Sender) error {
	external := committer.Type == SenderTypeNewMemberCommit
	var (
		nGCE, nExternalInit, nReInit int
		nAppData, nResumeNew         int
		removed                      []uint32
		updated                      []uint32
		pskIDs                       [][]byte
		addKeys                      [][]byte // signature keys of added members
	)
	for i, ap := range list {
		p := ap.proposal
		switch p.Type {
		case ProposalTypeAdd:
			if external {
				return fmt.Errorf("%w: Add in an external commit", ErrInvalidProposal)
			}
			if p.KeyPackage == nil {
				return fmt.Errorf("%w: Add %d without KeyPackage", ErrInvalidProposal, i)
			}
			kp := p.KeyPackage
			if kp.CipherSuite != g.ctx.CipherSuite || kp.Version != ProtocolVersionMLS10 {
				return fmt.Errorf("%w: Add %d: KeyPackage for %v/%d in a %v group", ErrInvalidProposal, i, kp.CipherSuite, kp.Version, g.ctx.CipherSuite)
			}
			if err := kp.Verify(); err != nil {
				return fmt.Errorf("%w: Add %d: %w", ErrInvalidProposal, i, err)
			}
			if bytes.Equal(kp.InitKey, kp.LeafNode.EncryptionKey) {
				return fmt.Errorf("%w: Add %d: init key equals the leaf encryption key", ErrInvalidProposal, i)
			}
			for _, k := range addKeys {
				if bytes.Equal(k, kp.LeafNode.SignatureKey) {
					return fmt.Errorf("%w: Add %d: two Adds with the same signature key", ErrInvalidProposal, i)
				}
			}
			addKeys = append(addKeys, kp.LeafNode.SignatureKey)
		case ProposalTypeUpdate:
			if external {
				return fmt.Errorf("%w: Update in an external commit", ErrInvalidProposal)
			}
			if p.LeafNode == nil || ap.sender.Type != SenderTypeMember {
				return fmt.Errorf("%w: Update %d not from a member", ErrInvalidProposal, i)
			}
			if ap.sender == committer {
				return fmt.Errorf("%w: Update %d proposed by the committer", ErrInvalidProposal, i)
			}
			if slices.Contains(updated, ap.sender.Index) {
				return fmt.Errorf("%w: two Updates for leaf %d", ErrInvalidProposal, ap.sender.Index)
			}
			updated = append(updated, ap.sender.Index)
		case ProposalTypeRemove:
			if !g.tree.inRange(leafIndex(p.Removed)) || g.tree.leaf(leafIndex(p.Removed)) == nil {
				return fmt.Errorf("%w: Remove %d of blank or absent leaf %d", ErrInvalidProposal, i, p.Removed)
			}
			if slices.Contains(removed, p.Removed) {
				return fmt.Errorf("%w: leaf %d removed twice", ErrInvalidProposal, p.Removed)
			}
			if committer.Type == SenderTypeMember && p.Removed == committer.Index {
				return fmt.Errorf("%w: the committer removes itself", ErrInvalidProposal)
			}
			removed = append(removed, p.Removed)
		case ProposalTypePSK:
			if p.PSK == nil {
				return fmt.Errorf("%w: PreSharedKey %d without ID", ErrInvalidProposal, i)
			}
			id := p.PSK
			if len(id.PSKNonce) != g.cs.nh {
				return fmt.Errorf("%w: PSK nonce of %d bytes, want %d", ErrInvalidProposal, len(id.PSKNonce), g.cs.nh)
			}
			if id.PSKType == PSKTypeResumption && id.Usage != ResumptionPSKUsageApplication {
				// A reinit or branch PSK only starts a new group: the commit from its creator's
				// epoch 0 to epoch 1 (RFC 9420 §11.2, §11.3), once.
				if g.ctx.Epoch != 0 || nResumeNew > 0 {
					return fmt.Errorf("%w: resumption PSK with usage %d outside the first commit of a new group", ErrInvalidProposal, id.Usage)
				}
				nResumeNew++
			}
			enc, err := id.encodeID()
			if err != nil {
				return fmt.Errorf("%w: %w", ErrInvalidProposal, err)
			}
			for _, e := range pskIDs {
				if bytes.Equal(e, enc) {
					return fmt.Errorf("%w: PSK %s twice", ErrInvalidProposal, pskName(id))
				}
			}
			pskIDs = append(pskIDs, enc)
		case ProposalTypeReInit:
			nReInit++
			if err := g.checkReInit(p.ReInit); err != nil {
				return err
			}
		case ProposalTypeExternalInit:
			if !external {
				return fmt.Errorf("%w: ExternalInit in a member commit", ErrInvalidProposal)
			}
			nExternalInit++
		case ProposalTypeGroupContextExtensions:
			if external {
				return fmt.Errorf("%w: GroupContextExtensions in an external commit", ErrInvalidProposal)
			}
			nGCE++
			if err := g.checkExtensionsSupported(p.Extensions); err != nil {
				return err
			}
		default:
			if err := g.validateExtensionProposal(ap, committer); err != nil {
				return err
			}
			switch p.Type {
			case ProposalTypeSelfRemove:
				if slices.Contains(removed, ap.sender.Index) {
					return fmt.Errorf("%w: leaf %d removed twice", ErrInvalidProposal, ap.sender.Index)
				}
				removed = append(removed, ap.sender.Index)
			case ProposalTypeAppDataUpdate:
				nAppData++
			}
		}
	}
	if nAppData > 0 && nGCE > 0 {
		return fmt.Errorf("%w: AppDataUpdate together with GroupContextExtensions", ErrInvalidProposal)
	}
	for _, u := range updated {
		if slices.Contains(removed, u) {
			return fmt.Errorf("%w: leaf %d both updated and removed", ErrInvalidProposal, u)
		}
	}
	if nGCE > 1 {
		return fmt.Errorf("%w: %d GroupContextExtensions proposals", ErrInvalidProposal, nGCE)
	}
	if nReInit > 0 && len(list) != 1 {
		return fmt.Errorf("%w: ReInit together with other proposals", ErrInvalidProposal)
	}
	if external && nExternalInit != 1 {
		return fmt.Errorf("%w: external commit with %d ExternalInit proposals", ErrInvalidProposal, nExternalInit)
	}
	return nil
}

// encodeID encodes a PreSharedKeyID without its nonce, for duplicate detection.
func (p *PreSharedKeyID) encodeID() ([]byte, error) {
	q := *p
	q.PSKNonce = nil
	b, err := encode("PreSharedKeyID", &q)
	return b, err
}

// checkExtensionsSupported checks that every member supports every non-default extension of es
// and that es's required_capabilities are met by every member (RFC 9420 §12.1.7).
func (g *publicState) checkExtensionsSupported(es Extensions) error {
	if err := es.checkDuplicates(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidProposal, err)
	}
	rc, err := parseRequiredCapabilities(es)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidProposal, err)
	}
	for _, l := range g.tree.members() {
		ln := g.tree.leaf(l)
		for _, e := range es {
			if !defaultExtension(e.Type) && !slices.Contains(ln.Capabilities.Extensions, e.Type) {
				return fmt.Errorf("%w: leaf %d does not support extension 0x%04x", ErrInvalidProposal, l, uint16(e.Type))
			}
		}
		if err := checkRequired(ln, rc); err != nil {
			return fmt.Errorf("%w: leaf %d: %w", ErrInvalidProposal, l, err)
		}
	}
	return nil
}

// applyProposals applies a validated proposal list to tree (a clone of the epoch's tree) in the
// order of RFC 9420 §12.4.2: GroupContextExtensions, Updates, Removes, Adds; it validates the leaf
// nodes of Updates and Adds against the tree as it goes. self is the processing member's leaf
// (noLeaf for a PublicGroup): removing it sets selfRemoved.
func (g *publicState) applyProposals(tree *ratchetTree, list []appliedProposal, committer Sender, self leafIndex, appData AppDataUpdater) (*proposalEffect, error) {
	eff := &proposalEffect{extensions: g.ctx.Extensions}
	if len(list) == 0 {
		eff.pathRequired = true
	}
	for _, ap := range list {
		switch ap.proposal.Type {
		case ProposalTypeAdd, ProposalTypePSK, ProposalTypeReInit, ProposalTypeAppDataUpdate:
		default:
			eff.pathRequired = true
		}
	}
	for _, ap := range list {
		if ap.proposal.Type == ProposalTypeGroupContextExtensions {
			eff.extensions = ap.proposal.Extensions
			eff.gce = true
		}
	}
	exts, changed, err := applyAppDataUpdates(eff.extensions, list, appData)
	if err != nil {
		return nil, err
	}
	if changed {
		if err := g.checkExtensionsSupported(exts); err != nil {
			return nil, err
		}
		eff.extensions, eff.gce = exts, true
	}
	for _, ap := range list {
		if ap.proposal.Type != ProposalTypeUpdate {
			continue
		}
		l := leafIndex(ap.sender.Index)
		if tree.leaf(l) == nil {
			return nil, fmt.Errorf("%w: Update from blank leaf %d", ErrInvalidProposal, l)
		}
		ln := ap.proposal.LeafNode
		if bytes.Equal(ln.EncryptionKey, tree.leaf(l).EncryptionKey) {
			return nil, fmt.Errorf("%w: Update from leaf %d keeps its encryption key", ErrInvalidProposal, l)
		}
		if err := tree.validateLeafNode(ln, l, &leafCheck{groupID: g.ctx.GroupID, extensions: eff.extensions, source: LeafNodeSourceUpdate}); err != nil {
			return nil, fmt.Errorf("%w: Update from leaf %d: %w", ErrInvalidProposal, l, err)
		}
		if err := tree.updateLeaf(l, ln); err != nil {
			return nil, err
		}
	}
	for _, ap := range list {
		if ap.proposal.Type != ProposalTypeRemove && !isSelfRemove(ap.proposal) {
			continue
		}
		l := leafIndex(ap.proposal.Removed)
		if isSelfRemove(ap.proposal) {
			l = leafIndex(ap.sender.Index)
		}
		ln := tree.leaf(l)
		if ln == nil {
			return nil, fmt.Errorf("%w: Remove of blank leaf %d", ErrInvalidProposal, l)
		}
		eff.removed = append(eff.removed, Member{Leaf: LeafIndex(l), Credential: ln.Credential, SignatureKey: ln.SignatureKey})
		if l == self {
			eff.selfRemoved = true
		}
		if err := tree.removeLeaf(l); err != nil {
			return nil, err
		}
	}
	for _, ap := range list {
		switch ap.proposal.Type {
		case ProposalTypeAdd:
			kp := ap.proposal.KeyPackage
			ln := &kp.LeafNode
			next := nextAddIndex(tree)
			if err := tree.validateLeafNode(ln, next, &leafCheck{extensions: eff.extensions, source: LeafNodeSourceKeyPackage, skipSignature: true, checkLifetime: true, at: g.env.now()}); err != nil {
				return nil, fmt.Errorf("%w: Add: %w", ErrInvalidProposal, err)
			}
			for x := range tree.nodes {
				if k := tree.nodes[x].encryptionKey(); k != nil && bytes.Equal(k, kp.InitKey) {
					return nil, fmt.Errorf("%w: Add: init key already used in the tree", ErrInvalidProposal)
				}
			}
			eff.added = append(eff.added, tree.addLeaf(ln))
			eff.addedKPs = append(eff.addedKPs, kp)
		case ProposalTypePSK:
			eff.psks = append(eff.psks, *ap.proposal.PSK)
		case ProposalTypeExternalInit:
			eff.externalInit = ap.proposal.KEMOutput
		case ProposalTypeReInit:
			eff.reinit = ap.proposal.ReInit
		}
	}
	return eff, nil
}

// nextAddIndex returns the leaf an Add would take: the leftmost blank leaf, or a new one at the
// right edge.
func nextAddIndex(t *ratchetTree) leafIndex {
	for l := leafIndex(0); uint32(l) < t.width(); l++ {
		if t.nodes[l.node()].blank() {
			return l
		}
	}
	return leafIndex(t.width())
}

func isSelfRemove(p *Proposal) bool { return p.Type == ProposalTypeSelfRemove }

// validateExtensionProposal checks a proposal of a type RFC 9420 does not define, alone.
func (g *publicState) validateExtensionProposal(ap appliedProposal, committer Sender) error {
	switch ap.proposal.Type {
	case ProposalTypeAppDataUpdate:
		u := ap.proposal.AppDataUpdate
		if u == nil || (u.Op != AppDataOpUpdate && u.Op != AppDataOpRemove) {
			return fmt.Errorf("%w: malformed AppDataUpdate", ErrInvalidProposal)
		}
		return nil
	case ProposalTypeSelfRemove:
		if ap.sender.Type != SenderTypeMember {
			return fmt.Errorf("%w: SelfRemove from a %s sender", ErrInvalidProposal, ap.sender.Type)
		}
		if ap.sender == committer {
			return fmt.Errorf("%w: the committer cannot commit its own SelfRemove", ErrInvalidProposal)
		}
		if !g.tree.inRange(leafIndex(ap.sender.Index)) || g.tree.leaf(leafIndex(ap.sender.Index)) == nil {
			return fmt.Errorf("%w: SelfRemove from blank leaf %d", ErrInvalidProposal, ap.sender.Index)
		}
		return nil
	}
	return fmt.Errorf("%w: unsupported proposal type 0x%04x", ErrInvalidProposal, uint16(ap.proposal.Type))
}
