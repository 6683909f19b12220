package provider

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/room"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// Proposals (protocol-06 §4.7, §4.8; room-policy-03 §5.5 item 6).
//
// The hub accepts proposal bundles on /update (PublicMessage only), validates each with one of its
// own clients in the room, authorizes it against the proposer's role, stores it for the room's
// epoch (provider_proposals) and fans it out like a commit. Every member commit of that epoch
// must include all of them by reference (else invalidProposal listing the missing refs); an
// external commit cannot (RFC 9420 §12.4.3.2), so the hub regenerates the ones that still apply
// as its own external proposals for the new epoch and staples them to the commit's fanout
// (readings P11-P14 in docs/interop.md).
//
// Who commits (reading P13, the room-policy "immediate_commit" behaviour): the hub if one of its
// members can (is neither removed nor updated by the pending proposals), else the provider of the
// lowest such leaf. Every provider computes the same answer from the group state; the designated
// one commits as soon as its inbox has applied the proposals, and again on the inbox ticker while
// they stay pending; after pendingFallback anyone who can commits. A lost race is answered
// wrongEpoch and is harmless.

// maxBundleProposals bounds the proposals of one /update proposal bundle.
const maxBundleProposals = 16

// errInvalidProposal is a proposal the hub cannot accept as valid (invalidProposal on the wire).
var errInvalidProposal = errors.New("provider: invalid proposal")

// errMissingProposals is a member commit that leaves out pending proposals of its epoch.
type errMissingProposals struct{ Refs [][]byte }

func (e *errMissingProposals) Error() string {
	return fmt.Sprintf("provider: the commit omits %d pending proposal(s) of its epoch", len(e.Refs))
}

// storedProposal is one row of provider_proposals.
type storedProposal struct {
	Epoch    uint64
	Ref      []byte
	Msg      *mls.MLSMessage
	Accepted uint64
	Target   event.UserURI
}

// content returns the proposal's framed content (stored proposals are PublicMessages).
func (s *storedProposal) content() (*mls.FramedContent, bool) {
	if s.Msg == nil || s.Msg.PublicMessage == nil || s.Msg.PublicMessage.Content.Proposal == nil {
		return nil, false
	}
	return &s.Msg.PublicMessage.Content, true
}

func messageHash(raw []byte) string {
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// loadProposals returns room's stored proposals of epoch in acceptance order.
func loadProposals(ctx context.Context, q store.Querier, room event.RoomURI, epoch uint64) ([]storedProposal, error) {
	rows, err := dbOf(q).proposalRows(ctx, room, epoch)
	if err != nil {
		return nil, err
	}
	out := make([]storedProposal, 0, len(rows))
	for _, r := range rows {
		s := storedProposal{Epoch: epoch, Ref: r.ref, Accepted: uint64(r.accepted), Target: event.UserURI(r.target)}
		if s.Msg, err = mls.DecodeMLSMessage(r.message); err != nil {
			return nil, fmt.Errorf("provider: stored proposal in %s: %w", room, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// insertProposal stores a proposal of room's epoch (a second insert of the same bytes is a no-op).
func insertProposal(ctx context.Context, tx *store.Tx, room event.RoomURI, s *storedProposal) error {
	raw, err := s.Msg.Encode()
	if err != nil {
		return fmt.Errorf("provider: encode proposal: %w", err)
	}
	return dbOf(tx).insertProposal(ctx, room, s.Epoch, messageHash(raw), proposalRow{ref: s.Ref, message: raw, accepted: int64(s.Accepted), target: string(s.Target)})
}

// clearProposals forgets room's proposals of epochs before epoch. The rows of the epoch just
// committed stay one more epoch, so that a resubmitted proposal still gets its first answer.
func clearProposals(ctx context.Context, tx *store.Tx, room event.RoomURI, epoch uint64) error {
	return dbOf(tx).clearProposals(ctx, room, epoch)
}

// cachePending makes g cache the stored proposals of its epoch (already cached ones are kept
// once), so that its next commit includes them and it can process a commit that references them.
func cachePending(ctx context.Context, q store.Querier, room event.RoomURI, g groupView) error {
	pend, err := loadProposals(ctx, q, room, g.Epoch())
	if err != nil {
		return err
	}
	for i := range pend {
		if _, err := g.Process(pend[i].Msg, mls.ProcessOptions{}); err != nil {
			return fmt.Errorf("provider: cache pending proposal %x: %w", pend[i].Ref, err)
		}
	}
	return nil
}

// targetOf returns the user a received proposal adds or removes (the proposer for SelfRemove and
// Update), as seen by g, the group that processed it.
func targetOf(g groupView, rec *mls.Received) (event.UserURI, error) {
	switch rec.Proposal.Type {
	case mls.ProposalTypeSelfRemove, mls.ProposalTypeUpdate:
		return userOfCredential(rec.Credential)
	case mls.ProposalTypeRemove:
		m, ok := g.Member(mls.LeafIndex(rec.Proposal.Removed))
		if !ok {
			return "", fmt.Errorf("%w: Remove of an empty leaf", errInvalidProposal)
		}
		return userOfCredential(&m.Credential)
	case mls.ProposalTypeAdd:
		return userOfCredential(&rec.Proposal.KeyPackage.LeafNode.Credential)
	}
	return "", nil
}

// touch is what a proposal changes, for refusing two pending proposals that no commit could carry
// together (the same leaf removed or updated twice, the same KeyPackage key added twice).
func touch(fc *mls.FramedContent) string {
	switch p := fc.Proposal; p.Type {
	case mls.ProposalTypeSelfRemove, mls.ProposalTypeUpdate:
		return fmt.Sprint("leaf ", fc.Sender.Index)
	case mls.ProposalTypeRemove:
		return fmt.Sprint("leaf ", p.Removed)
	case mls.ProposalTypeAdd:
		return "key " + hex.EncodeToString(p.KeyPackage.LeafNode.SignatureKey)
	}
	return ""
}

// authorizeProposal checks a proposal processed by g against the room policy: peer must be the
// proposer's provider, and the proposer a listed, not banned participant. A member may always
// remove or update its own clients (SelfRemove, Remove of a leaf of the same user, Update);
// Add and Remove of others follow the rules for commits (acceptCommit). It returns the target.
func authorizeProposal(ctx context.Context, q store.Querier, own event.Domain, room event.RoomURI, peer event.Domain, g groupView, rec *mls.Received) (event.UserURI, error) {
	if rec.Sender.Type != mls.SenderTypeMember {
		return "", fmt.Errorf("%w: proposals from %s senders are not accepted", errNotAllowed, rec.Sender.Type)
	}
	proposer, err := userOfCredential(rec.Credential)
	if err != nil {
		return "", fmt.Errorf("%w: %w", errNotAllowed, err)
	}
	st, err := stateOfGroup(g)
	if err != nil {
		return "", err
	}
	if !activeRole(st, proposer) || proposer.Domain() != peer {
		return "", fmt.Errorf("%w: %s may not propose", errNotAllowed, proposer)
	}
	target, err := targetOf(g, rec)
	if err != nil {
		return "", err
	}
	if lc := proposalLeaf(g, rec); lc != nil {
		v := &vouch{own: own, room: room, submitter: peer}
		if rec.Proposal.KeyPackage != nil {
			v.keyPackages = []*mls.KeyPackage{rec.Proposal.KeyPackage}
		}
		if _, err := checkLeaves(ctx, q, v, []leafChange{*lc}); err != nil {
			return "", err
		}
	}
	switch rec.Proposal.Type {
	case mls.ProposalTypeUpdate:
		return target, nil
	case mls.ProposalTypeSelfRemove, mls.ProposalTypeRemove:
		// Reading P2: a provider speaks for its own users, so removing one of their clients is
		// their own act, authorized by their own role.
		if target == proposer || target.Domain() == peer {
			if mayRemoveOwn(st, target, len(leavesOf(g, target)) <= 1) {
				return target, nil
			}
			return "", fmt.Errorf("%w: %s may not leave or remove its own client", errNotAllowed, target)
		}
		if mayRemoveOthers(st, proposer) {
			return target, nil
		}
		return "", fmt.Errorf("%w: %s may not remove %s", errNotAllowed, proposer, target)
	case mls.ProposalTypeAdd:
		switch {
		case isBanned(st, target):
			return "", fmt.Errorf("%w: %s is banned", errNotAllowed, target)
		case activeRole(st, target) || mayAdd(st, proposer):
			return target, nil
		}
		return "", fmt.Errorf("%w: %s may not add participants", errNotAllowed, proposer)
	}
	return "", fmt.Errorf("%w: %s proposals are not accepted", errNotAllowed, rec.Proposal.Type)
}

// mayRemoveOwn reports whether u's role lets u remove its own client: its last one is a leave
// (canRemoveSelf with an entry from its role to 0), another one needs canRemoveOwnClient
// (room-policy-03 §5.4).
func mayRemoveOwn(st *room.State, u event.UserURI, last bool) bool {
	if st.Roles == nil {
		return false
	}
	r := st.RoleOf(u)
	def, ok := st.Roles.Role(r)
	switch {
	case !ok:
		return false
	case last:
		return def.Has(room.CanRemoveSelf) && def.MayChange(r, room.RoleNone)
	}
	return def.Has(room.CanRemoveOwnClient)
}

// acceptProposals sequences a proposal bundle in room inside tx (room lock held): dedupe by
// bytes, epoch, validation with g (a client of ours in the room's epoch, which caches them),
// policy, conflicts with the pending set, storage and fanout to followers and our own clients.
// It returns the accepted timestamp (the first one for a resubmission).
func (p *Provider) acceptProposals(ctx context.Context, tx *store.Tx, room event.RoomURI, peer event.Domain, g groupView, msgs []*mls.MLSMessage) (uint64, error) {
	rr, err := dbOf(tx).loadRoom(ctx, room)
	if err != nil {
		return 0, err
	}
	if rr == nil || rr.Hub != p.cfg.Domain {
		return 0, fmt.Errorf("%w: unknown room %s", errNotAllowed, room)
	}
	raws := make([][]byte, len(msgs))
	for i, m := range msgs {
		if raws[i], err = m.Encode(); err != nil {
			return 0, fmt.Errorf("%w: %w", errInvalidProposal, err)
		}
	}
	if acc, found, err := dbOf(tx).proposalAccepted(ctx, room, messageHash(raws[0])); err != nil || found {
		return acc, err // found: a resubmission, accepted before
	}
	for _, m := range msgs {
		if m.WireFormat != mls.WireFormatPublicMessage || m.PublicMessage == nil || m.PublicMessage.Content.ContentType != mls.ContentTypeProposal {
			return 0, fmt.Errorf("%w: this hub accepts proposals sent as PublicMessage only", errNotAllowed)
		}
		if e := m.PublicMessage.Content.Epoch; e != rr.Epoch {
			return 0, &errWrongEpoch{Current: rr.Epoch}
		}
	}
	if g.Epoch() != rr.Epoch {
		return 0, &errWrongEpoch{Current: rr.Epoch}
	}
	pend, err := loadProposals(ctx, tx, room, rr.Epoch)
	if err != nil {
		return 0, err
	}
	touched := map[string]bool{}
	for i := range pend {
		if fc, ok := pend[i].content(); ok {
			touched[touch(fc)] = true
		}
	}
	ts := uint64(p.now().UnixMilli())
	accepted := make([]storedProposal, 0, len(msgs))
	for i, m := range msgs {
		rec, err := g.Process(m, mls.ProcessOptions{})
		if err != nil || rec.Kind != mls.ReceivedProposal {
			return 0, fmt.Errorf("%w: proposal %d: %v", errInvalidProposal, i, err)
		}
		target, err := authorizeProposal(ctx, tx, p.cfg.Domain, room, peer, g, rec)
		if err != nil {
			return 0, err
		}
		if t := touch(&m.PublicMessage.Content); t != "" {
			if touched[t] {
				return 0, fmt.Errorf("%w: proposal %d conflicts with a pending proposal (%s)", errInvalidProposal, i, t)
			}
			touched[t] = true
		}
		accepted = append(accepted, storedProposal{Epoch: rr.Epoch, Ref: rec.ProposalRef, Msg: m, Accepted: ts, Target: target})
	}
	for i := range accepted {
		if err := insertProposal(ctx, tx, room, &accepted[i]); err != nil {
			return 0, err
		}
	}
	fs, err := p.followers(ctx, tx, room)
	if err != nil {
		return 0, err
	}
	for _, d := range fs {
		if err := p.outbox.Enqueue(ctx, tx, d, room, &protocol.FanoutMessage{Timestamp: ts, Message: msgs[0], MoreProposals: msgs[1:]}); err != nil {
			return 0, fmt.Errorf("provider: enqueue fanout: %w", err)
		}
	}
	for _, m := range msgs {
		if err := insertInbox(ctx, tx, room, "", ts, m, nil); err != nil {
			return 0, err
		}
	}
	return ts, nil
}

// updateProposals sequences a follower's proposal bundle (the proposal case of /update; room
// lock held, rr loaded).
func (p *Provider) updateProposals(ctx context.Context, peer protocol.Peer, room event.RoomURI, rr *roomRow, b *protocol.HandshakeBundle) (*protocol.UpdateRoomResponse, error) {
	msgs := append([]*mls.MLSMessage{b.ProposalOrCommit}, b.MoreProposals...)
	if len(msgs) > maxBundleProposals {
		return &protocol.UpdateRoomResponse{ResponseCode: protocol.UpdateNotAllowed,
			ErrorDescription: fmt.Sprintf("at most %d proposals in one bundle", maxBundleProposals)}, nil
	}
	reader, err := p.viewAt(ctx, p.st, room, rr.Epoch)
	if err != nil {
		return nil, err
	}
	if reader == nil {
		return nil, catchingUp()
	}
	var ts uint64
	err = p.st.InTx(ctx, func(tx *store.Tx) error {
		var err error
		ts, err = p.acceptProposals(ctx, tx, room, peer.Domain, reader, msgs)
		return err
	})
	if resp := p.updateRefusal(peer.Domain, room, err); resp != nil {
		p.log.Info("proposal refused", "peer", peer.Domain, "room", room, "code", resp.ResponseCode, "err", err)
		return resp, nil
	}
	if err != nil {
		return nil, err
	}
	p.outbox.Wake()
	p.kick()
	return &protocol.UpdateRoomResponse{ResponseCode: protocol.UpdateSuccess, AcceptedTimestamp: ts}, nil
}

// updateRefusal is updateAnswer for a partner's handshake: a refusal is counted, and a leaf no
// provider vouched for is logged at WARN with the partner's domain.
func (p *Provider) updateRefusal(peer event.Domain, room event.RoomURI, err error) *protocol.UpdateRoomResponse {
	resp := updateAnswer(err)
	if resp == nil {
		return nil
	}
	p.refused("update", refusalReason(err))
	var ce *errCredential
	if errors.As(err, &ce) {
		p.log.Warn("refused a handshake with a leaf its provider did not vouch for", "peer", peer, "room", room, "reason", ce.Reason, "err", err)
	}
	return resp
}

// updateAnswer maps a refusal of the hub's sequencing to its /update answer (nil: not a refusal).
// A commit that omits pending proposals is invalidProposal with the missing ProposalRefs
// (reading P12): the committer learns exactly what to wait for.
func updateAnswer(err error) *protocol.UpdateRoomResponse {
	var (
		we *errWrongEpoch
		mp *errMissingProposals
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &we):
		return &protocol.UpdateRoomResponse{ResponseCode: protocol.UpdateWrongEpoch, CurrentEpoch: we.Current}
	case errors.As(err, &mp):
		return &protocol.UpdateRoomResponse{ResponseCode: protocol.UpdateInvalidProposal, ErrorDescription: err.Error(), InvalidProposals: mp.Refs}
	case errors.Is(err, errInvalidProposal), errors.Is(err, errInvalidState):
		return &protocol.UpdateRoomResponse{ResponseCode: protocol.UpdateInvalidProposal, ErrorDescription: err.Error()}
	case errors.Is(err, errNotAllowed):
		return &protocol.UpdateRoomResponse{ResponseCode: protocol.UpdateNotAllowed, ErrorDescription: err.Error()}
	}
	return nil
}

// readerAt returns a client of ours in room at epoch (nil if none).
func readerAt(ctx context.Context, q store.Querier, room event.RoomURI, epoch uint64) (*clientState, error) {
	clients, err := loadClients(ctx, q, room)
	if err != nil {
		return nil, err
	}
	for _, c := range clients {
		if c.Group.Epoch() == epoch {
			return c, nil
		}
	}
	return nil, nil
}

// commitRefs returns the ProposalRefs a PublicMessage commit includes by reference.
func commitRefs(m *mls.MLSMessage) ([][]byte, error) {
	if m == nil || m.PublicMessage == nil || m.PublicMessage.Content.Commit == nil {
		return nil, fmt.Errorf("%w: not a PublicMessage commit", errNotAllowed)
	}
	var out [][]byte
	for _, por := range m.PublicMessage.Content.Commit.Proposals {
		if por.Type == mls.ProposalOrRefReference {
			out = append(out, por.Reference)
		}
	}
	return out, nil
}

// checkPending is acceptCommit's proposal step (tx, room lock held): a member commit must include
// every pending proposal of its epoch; what those proposals do was authorized when they were
// accepted (h.notePending tells the room policy). An external commit includes none (RFC 9420 §12.4.3.2):
// the hub's regenerated proposals (h.regenerated) become the next epoch's pending set.
func (p *Provider) checkPending(ctx context.Context, tx *store.Tx, room event.RoomURI, h *handshake) error {
	pend, err := loadProposals(ctx, tx, room, h.epoch)
	if err != nil || len(pend) == 0 || h.external {
		return err
	}
	refs, err := commitRefs(h.commit)
	if err != nil {
		return err
	}
	var missing [][]byte
	for _, s := range pend {
		found := false
		for _, r := range refs {
			if bytes.Equal(r, s.Ref) {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, s.Ref)
		}
		h.notePending(&s)
	}
	if len(missing) > 0 {
		return &errMissingProposals{Refs: missing}
	}
	return nil
}

// afterCommit is acceptCommit's last step (tx, room lock held): the proposals of older epochs are
// forgotten and the regenerated ones of an external commit are stored and queued to our own
// clients after the commit (followers get them stapled to the commit's FanoutMessage).
func (p *Provider) afterCommit(ctx context.Context, tx *store.Tx, room event.RoomURI, h *handshake, ts uint64) error {
	if err := clearProposals(ctx, tx, room, h.epoch); err != nil {
		return err
	}
	for i := range h.regenerated {
		s := &h.regenerated[i]
		s.Accepted = ts
		if err := insertProposal(ctx, tx, room, s); err != nil {
			return err
		}
		if err := insertInbox(ctx, tx, room, "", ts, s.Msg, nil); err != nil {
			return err
		}
	}
	return nil
}

// stapled returns the regenerated proposals to staple to a commit's FanoutMessage.
func (h *handshake) stapled() []*mls.MLSMessage {
	var out []*mls.MLSMessage
	for i := range h.regenerated {
		out = append(out, h.regenerated[i].Msg)
	}
	return out
}

// hubSender is the hub's entry in the external_senders extension of rooms we create and its
// hub_sender in GroupInfoResponses: the hub signature key with a basic credential naming the
// provider (mimi://<domain>).
func (p *Provider) hubSender(hs *mls.Signer) mls.ExternalSender {
	return mls.ExternalSender{SignatureKey: hs.Public, Credential: mls.Credential{Type: mls.CredentialTypeBasic, Identity: []byte("mimi://" + string(p.cfg.Domain))}}
}

// externalSendersExtension is the external_senders extension of rooms we create (protocol-06
// §4.7: it MUST contain the hub).
func (p *Provider) externalSendersExtension(ctx context.Context) (mls.Extension, error) {
	hs, err := p.hubSigner(ctx)
	if err != nil {
		return mls.Extension{}, err
	}
	return mls.ExternalSendersExtension([]mls.ExternalSender{p.hubSender(hs)})
}

// hubSenderIndex returns our index in g's external_senders.
func hubSenderIndex(g groupView, hs *mls.Signer) (uint32, bool) {
	d, ok := g.Extensions().Find(mls.ExtensionExternalSenders)
	if !ok {
		return 0, false
	}
	senders, err := mls.ParseExternalSenders(d)
	if err != nil {
		return 0, false
	}
	for i, s := range senders {
		if bytes.Equal(s.SignatureKey, hs.Public) {
			return uint32(i), true
		}
	}
	return 0, false
}

// regenerate re-issues the pending proposals of epoch that an external commit invalidated
// (protocol-06 §4.8, reading P14): after the external commit, old (the hub's client in epoch) and
// next (the same client in the new epoch) are compared; a SelfRemove or Remove of a member still
// at the same leaf becomes the hub's external Remove, an Add the hub's external Add of the same
// KeyPackage; Updates are dropped (an external sender cannot propose them). next caches them.
// Rooms without the hub in external_senders get nothing regenerated.
func (p *Provider) regenerate(ctx context.Context, room event.RoomURI, epoch uint64, old, next groupView) ([]storedProposal, error) {
	pend, err := loadProposals(ctx, p.st, room, epoch)
	if err != nil || len(pend) == 0 {
		return nil, err
	}
	hs, err := p.hubSigner(ctx)
	if err != nil {
		return nil, err
	}
	idx, ok := hubSenderIndex(next, hs)
	if !ok {
		p.log.Warn("pending proposals dropped by an external commit: the hub is not an external sender", "room", room, "count", len(pend))
		return nil, nil
	}
	var out []storedProposal
	for i := range pend {
		fc, ok := pend[i].content()
		if !ok {
			continue
		}
		var np *mls.Proposal
		switch fc.Proposal.Type {
		case mls.ProposalTypeSelfRemove, mls.ProposalTypeRemove:
			l := mls.LeafIndex(fc.Proposal.Removed)
			if fc.Proposal.Type == mls.ProposalTypeSelfRemove {
				l = mls.LeafIndex(fc.Sender.Index)
			}
			before, ok1 := old.Member(l)
			after, ok2 := next.Member(l)
			if ok1 && ok2 && bytes.Equal(before.SignatureKey, after.SignatureKey) {
				np = &mls.Proposal{Type: mls.ProposalTypeRemove, Removed: uint32(l)}
			}
		case mls.ProposalTypeAdd:
			np = &mls.Proposal{Type: mls.ProposalTypeAdd, KeyPackage: fc.Proposal.KeyPackage}
		}
		if np == nil {
			p.log.Info("pending proposal dropped by an external commit", "room", room, "type", fc.Proposal.Type)
			continue
		}
		m, err := mls.ExternalProposal(next.GroupID(), next.Epoch(), idx, hs, np)
		if err != nil {
			return nil, fmt.Errorf("provider: regenerate proposal: %w", err)
		}
		rec, err := next.Process(m, mls.ProcessOptions{})
		if err != nil {
			p.log.Info("regenerated proposal not valid in the new epoch, dropped", "room", room, "err", err)
			continue
		}
		out = append(out, storedProposal{Epoch: next.Epoch(), Ref: rec.ProposalRef, Msg: m, Target: pend[i].Target})
	}
	return out, nil
}

// ---- leaving and committing ----

// proposeLeave makes u's client propose its SelfRemove (a leave, canRemoveSelf), with a Remove of
// every other leaf of u (stale leaves an external rejoin left behind: protocol-06 §4.8 has the
// leaver remove all of its clients), and sequences them at the hub (room lock held). The
// designated committer commits them, and u's client is deleted when that commit is applied.
// dedupe, if set, is marked processed with it.
func (p *Provider) proposeLeave(ctx context.Context, room event.RoomURI, u event.UserURI, dedupe string) error {
	c, err := loadClient(ctx, p.st, room, u)
	if err != nil {
		return err
	}
	if err := cachePending(ctx, p.st, room, c.Group); err != nil {
		return err
	}
	pend, err := loadProposals(ctx, p.st, room, c.Group.Epoch())
	if err != nil {
		return err
	}
	touched := map[string]bool{}
	for i := range pend {
		if fc, ok := pend[i].content(); ok {
			touched[touch(fc)] = true
		}
	}
	m, err := c.Group.ProposeSelfRemove()
	if err != nil {
		return fmt.Errorf("provider: SelfRemove: %w", err)
	}
	msgs := []*mls.MLSMessage{m}
	for _, l := range leavesOf(c.Group, u) {
		if l == c.Group.LeafIndex() || touched[fmt.Sprint("leaf ", l)] || len(msgs) == maxBundleProposals {
			continue
		}
		r, err := c.Group.ProposeRemove(l)
		if err != nil {
			return fmt.Errorf("provider: Remove of a stale leaf: %w", err)
		}
		msgs = append(msgs, r)
	}
	done := func(tx *store.Tx) error {
		if err := saveClient(ctx, tx, room, c, c.Group); err != nil {
			return err
		}
		return markOut(ctx, tx, dedupe)
	}
	if p.isHub(room) {
		return p.sequenceLocal(ctx, func(tx *store.Tx) error {
			if _, err := p.acceptProposals(ctx, tx, room, p.cfg.Domain, c.Group, msgs); err != nil {
				return err
			}
			return done(tx)
		})
	}
	resp, err := p.client.Update(ctx, room, &protocol.UpdateRequest{Bundle: protocol.HandshakeBundle{ProposalOrCommit: msgs[0], MoreProposals: msgs[1:]}})
	if err != nil {
		return fmt.Errorf("provider: SelfRemove at hub: %w", err)
	}
	switch resp.ResponseCode {
	case protocol.UpdateSuccess:
	case protocol.UpdateWrongEpoch:
		if c.Group.Epoch() < resp.CurrentEpoch && !p.inboxPending(ctx, room) {
			// We missed fanout (the hub's outbox gave up): rejoin, then leave from there.
			if err := p.rejoin(ctx, room, u); err != nil {
				return err
			}
		}
		return fmt.Errorf("provider: hub is at epoch %d, we at %d: retry after fanout", resp.CurrentEpoch, c.Group.Epoch())
	default:
		return fmt.Errorf("%w: hub refused the SelfRemove (%d): %s", errNotAllowed, resp.ResponseCode, resp.ErrorDescription)
	}
	return p.st.InTx(ctx, done)
}

// leavesOf returns the leaves of g whose credential names u.
func leavesOf(g groupView, u event.UserURI) []mls.LeafIndex {
	var out []mls.LeafIndex
	for _, m := range g.Members() {
		if mu, err := userOfCredential(&m.Credential); err == nil && mu == u {
			out = append(out, m.Leaf)
		}
	}
	return out
}

// pendingFallback is how long proposals may stay pending before any provider with a client that
// can commit them does so, not just the designated one (a designated provider that is down, or a
// stale leaf of a provider that has no client left, must not block the room).
const pendingFallback = 30 * time.Second

// eligibleLeaves returns the members of g that can commit the pending proposals: those the
// proposals neither remove nor update (a member cannot commit its own removal or Update).
func eligibleLeaves(g *mls.Group, pend []storedProposal) []mls.Member {
	excluded := map[mls.LeafIndex]bool{}
	for i := range pend {
		fc, ok := pend[i].content()
		if !ok {
			continue
		}
		switch fc.Proposal.Type {
		case mls.ProposalTypeSelfRemove, mls.ProposalTypeUpdate:
			if fc.Sender.Type == mls.SenderTypeMember {
				excluded[mls.LeafIndex(fc.Sender.Index)] = true
			}
		case mls.ProposalTypeRemove:
			excluded[mls.LeafIndex(fc.Proposal.Removed)] = true
		}
	}
	var out []mls.Member
	for _, m := range g.Members() {
		if !excluded[m.Leaf] {
			out = append(out, m)
		}
	}
	return out
}

// sequenceLocal runs f, the hub's acceptance of one of our own handshakes, in a transaction and
// wakes the outbox and the inbox.
func (p *Provider) sequenceLocal(ctx context.Context, f func(*store.Tx) error) error {
	if err := p.st.InTx(ctx, f); err != nil {
		return err
	}
	p.outbox.Wake()
	p.kick()
	return nil
}

// designatedCommitter returns the provider that commits the pending proposals of g's epoch
// (reading P13): the hub if one of its members can, else the provider of the eligible member with
// the lowest leaf index. Every provider computes the same answer from the group state.
func designatedCommitter(g *mls.Group, pend []storedProposal, hub event.Domain) (event.Domain, bool) {
	var (
		first event.Domain
		found bool
	)
	for _, m := range eligibleLeaves(g, pend) {
		u, err := userOfCredential(&m.Credential)
		if err != nil {
			continue
		}
		if u.Domain() == hub {
			return hub, true
		}
		if !found {
			first, found = u.Domain(), true
		}
	}
	return first, found
}

// commitPending commits room's pending proposals with one of our clients if we are the designated
// committer, or with any if fallback is set and they have been pending longer than
// pendingFallback (room lock held; our inbox for the room is applied first).
func (p *Provider) commitPending(ctx context.Context, room event.RoomURI, fallback bool) error {
	if p.inboxPending(ctx, room) {
		return nil // applied first; the inbox calls again
	}
	rr, err := p.db().loadRoom(ctx, room)
	if err != nil || rr == nil {
		return err
	}
	pend, err := loadProposals(ctx, p.st, room, rr.Epoch)
	if err != nil || len(pend) == 0 {
		return err
	}
	c, err := readerAt(ctx, p.st, room, rr.Epoch)
	if err != nil || c == nil {
		return err
	}
	d, ok := designatedCommitter(c.Group, pend, room.Domain())
	stale := fallback && p.now().Sub(time.UnixMilli(int64(pend[0].Accepted))) > pendingFallback
	if (!ok || d != p.cfg.Domain) && !stale {
		return nil
	}
	eligible := map[mls.LeafIndex]bool{}
	for _, m := range eligibleLeaves(c.Group, pend) {
		eligible[m.Leaf] = true
	}
	clients, err := loadClients(ctx, p.st, room)
	if err != nil {
		return err
	}
	for _, c := range clients {
		if c.Group.Epoch() == rr.Epoch && eligible[c.Group.LeafIndex()] {
			p.log.Debug("committing pending proposals", "room", room, "epoch", rr.Epoch, "count", len(pend), "fallback", d != p.cfg.Domain)
			return p.commitLocal(ctx, room, c.User, &localCommit{}, "")
		}
	}
	return nil
}

// sweepPending retries commitPending for every room with proposals pending in its epoch (the
// inbox ticker calls it; a designated committer that failed, or lost a race, tries again).
func (p *Provider) sweepPending(ctx context.Context) {
	rooms, err := p.db().roomsWithPendingProposals(ctx)
	if err != nil {
		p.log.Warn("pending proposals", "err", err)
		return
	}
	for _, r := range rooms {
		p.commitPendingLogged(ctx, r)
	}
}

// commitPendingLogged is commitPending under the room lock, with failures logged (the sweep
// retries).
func (p *Provider) commitPendingLogged(ctx context.Context, room event.RoomURI) {
	unlock := p.lockRoom(room)
	defer unlock()
	if err := p.commitPending(ctx, room, true); err != nil && ctx.Err() == nil {
		p.log.Info("pending proposals not committed yet", "room", room, "err", err)
	}
}

// mirrorProposal records a proposal our inbox applied (at a follower, the hub's fanout), so that
// commitPending sees it (tx; g is a client that processed it into rec).
func mirrorProposal(ctx context.Context, tx *store.Tx, room event.RoomURI, accepted uint64, m *mls.MLSMessage, g *mls.Group, rec *mls.Received) error {
	if m.PublicMessage == nil {
		return nil // not inspectable: nobody here can tell who commits it
	}
	target, err := targetOf(g, rec)
	if err != nil {
		target = ""
	}
	return insertProposal(ctx, tx, room, &storedProposal{Epoch: m.PublicMessage.Content.Epoch, Ref: rec.ProposalRef, Msg: m, Accepted: accepted, Target: target})
}

// pendingForJoiner returns the pending proposals of room's epoch for a GroupInfoResponse
// (protocol-06 §5.6). The joiner cannot include them in its external commit (RFC 9420
// §12.4.3.2); the hub regenerates them after it (reading P14).
func pendingForJoiner(ctx context.Context, q store.Querier, room event.RoomURI, epoch uint64) ([]protocol.PendingProposal, error) {
	pend, err := loadProposals(ctx, q, room, epoch)
	if err != nil {
		return nil, err
	}
	out := make([]protocol.PendingProposal, 0, len(pend))
	for _, s := range pend {
		out = append(out, protocol.PendingProposal{Proposal: s.Msg, HubAcceptedTime: s.Accepted})
	}
	return out, nil
}
