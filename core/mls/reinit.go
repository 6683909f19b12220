package mls

// Reinitialisation (RFC 9420 §11.2): a commit whose only proposal is a ReInit ends the group; its
// new epoch is the group's last. Any member then creates the new group (its group ID, version,
// cipher suite and extensions are the ReInit's) with a commit adding the other members and a
// resumption PSK of usage reinit from that last epoch; the others join it by Welcome, which they
// accept only when the new group matches the ReInit and the PSK is of the last epoch.

import (
	"bytes"
	"fmt"
	"slices"
)

// checkReInit checks a ReInit proposal on its own (RFC 9420 §12.1.5): a group ID, a version no
// lower than the group's.
func (g *publicState) checkReInit(ri *ReInit) error {
	switch {
	case ri == nil:
		return fmt.Errorf("%w: ReInit without body", ErrInvalidProposal)
	case len(ri.GroupID) == 0 || len(ri.GroupID) > 255:
		return fmt.Errorf("%w: ReInit to a group ID of %d bytes", ErrInvalidProposal, len(ri.GroupID))
	case ri.Version < g.ctx.Version:
		return fmt.Errorf("%w: ReInit to version %d below the group's %d", ErrInvalidProposal, ri.Version, g.ctx.Version)
	}
	if err := ri.Extensions.checkDuplicates(); err != nil {
		return fmt.Errorf("%w: ReInit: %w", ErrInvalidProposal, err)
	}
	return nil
}

// PendingReInit returns the ReInit proposal of the commit that made this epoch the group's last,
// if one did.
func (g *Group) PendingReInit() (ReInit, bool) {
	if g.reinit == nil {
		return ReInit{}, false
	}
	ri := *g.reinit
	ri.GroupID, ri.Extensions = slices.Clone(ri.GroupID), slices.Clone(ri.Extensions)
	return ri, true
}

// ReInitGroup creates the group that replaces g after a ReInit commit (RFC 9420 §11.2): a new
// group with the ReInit's group ID, cipher suite and extensions, and its first commit, which adds
// the members' KeyPackages (of the new cipher suite) and injects a resumption PSK of usage reinit
// from g's epoch. signer and cred are the creator's in the new group (signer of the new cipher
// suite); o.Extensions must be nil or the ReInit's. Send the Welcome to the members; Confirm the
// PendingCommit when the delivery service accepted it. g itself stays as it is (ErrReInit).
func (g *Group) ReInitGroup(signer *Signer, cred Credential, members []*KeyPackage, o GroupOptions) (*PendingCommit, error) {
	if g.pending.Load() || g.successor.Load() != nil {
		return nil, g.usable()
	}
	ri := g.reinit
	if ri == nil {
		return nil, fmt.Errorf("%w: ReInitGroup in epoch %d, which no ReInit commit made", ErrNotAllowed, g.ctx.Epoch)
	}
	if ri.Version != ProtocolVersionMLS10 {
		return nil, fmt.Errorf("mls: ReInit to protocol version %d: only MLS 1.0 is supported", ri.Version)
	}
	if signer.CipherSuite != ri.CipherSuite {
		return nil, fmt.Errorf("mls: ReInit to %v with a signer of %v", ri.CipherSuite, signer.CipherSuite)
	}
	if o.Extensions != nil && !extensionsEqual(o.Extensions, ri.Extensions) {
		return nil, fmt.Errorf("mls: ReInitGroup: the new group's extensions are the ReInit's")
	}
	o.Extensions = slices.Clone(ri.Extensions)
	ng, err := CreateGroup(ri.GroupID, signer, cred, o)
	if err != nil {
		return nil, fmt.Errorf("mls: ReInitGroup: %w", err)
	}
	psk := PreSharedKeyID{PSKType: PSKTypeResumption, Usage: ResumptionPSKUsageReinit, PSKGroupID: slices.Clone(g.ctx.GroupID), PSKEpoch: g.ctx.Epoch}
	pc, err := ng.commit(CommitOptions{Add: members, PSKs: []PreSharedKeyID{psk}}, g)
	if err != nil {
		return nil, fmt.Errorf("mls: ReInitGroup: %w", err)
	}
	return pc, nil
}

// checkResumptionJoin checks a Welcome's resumption PSKs of usage reinit or branch against the
// new epoch's GroupContext ctx and the joiner's state of the old group (RFC 9420 §11.2, §11.3,
// §12.4.3.1): at most one, the new group in epoch 1; for reinit, the old state is the last epoch
// of a group that a ReInit commit ended, the PSK is of that epoch, and the new group has the
// ReInit's group ID, version, cipher suite and extensions; for branch, the version and cipher
// suite are the old group's.
func checkResumptionJoin(ctx *GroupContext, psks []PreSharedKeyID, from *Group) error {
	var id *PreSharedKeyID
	for i := range psks {
		if psks[i].PSKType != PSKTypeResumption || psks[i].Usage == ResumptionPSKUsageApplication {
			continue
		}
		if id != nil {
			return fmt.Errorf("%w: Welcome with more than one reinit or branch PSK", ErrInvalidCommit)
		}
		id = &psks[i]
	}
	if id == nil {
		return nil
	}
	if ctx.Epoch != 1 {
		return fmt.Errorf("%w: a group resumed by a %d PSK starts in epoch 1, not %d", ErrInvalidCommit, id.Usage, ctx.Epoch)
	}
	if from == nil || !bytes.Equal(from.ctx.GroupID, id.PSKGroupID) {
		return fmt.Errorf("%w: %s (JoinOptions.Resumption)", ErrNoPSK, pskName(id))
	}
	switch id.Usage {
	case ResumptionPSKUsageReinit:
		ri := from.reinit
		switch {
		case ri == nil:
			return fmt.Errorf("%w: reinit PSK, but epoch %d of the old group was not made by a ReInit commit", ErrInvalidCommit, from.ctx.Epoch)
		case id.PSKEpoch != from.ctx.Epoch:
			return fmt.Errorf("%w: reinit PSK of epoch %d, the old group ended in epoch %d", ErrInvalidCommit, id.PSKEpoch, from.ctx.Epoch)
		case !bytes.Equal(ctx.GroupID, ri.GroupID) || ctx.Version != ri.Version || ctx.CipherSuite != ri.CipherSuite:
			return fmt.Errorf("%w: the new group (%x, version %d, %v) is not the ReInit's (%x, version %d, %v)", ErrInvalidCommit,
				ctx.GroupID, ctx.Version, ctx.CipherSuite, ri.GroupID, ri.Version, ri.CipherSuite)
		case !extensionsEqual(ctx.Extensions, ri.Extensions):
			return fmt.Errorf("%w: the new group's extensions are not the ReInit's", ErrInvalidCommit)
		}
	case ResumptionPSKUsageBranch:
		if ctx.Version != from.ctx.Version || ctx.CipherSuite != from.ctx.CipherSuite {
			return fmt.Errorf("%w: a branch keeps the version and cipher suite of the old group", ErrInvalidCommit)
		}
	}
	return nil
}

// extensionsEqual reports whether a and b list the same extensions in the same order.
func extensionsEqual(a, b Extensions) bool {
	return slices.EqualFunc(a, b, func(x, y Extension) bool { return x.Type == y.Type && bytes.Equal(x.Data, y.Data) })
}
