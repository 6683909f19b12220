package provider

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/room"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// submitScope dedupes resubmitted application messages at the hub.
const submitScope store.Scope = "provider.submit"

// handshake is a commit the hub sequences, with the room state before it and what it does to
// the room (core/room).
type handshake struct {
	peer      event.Domain  // provider that sent it (ours for local commits)
	committer event.UserURI // user of the committing client
	epoch     uint64        // epoch the commit was made in
	commit    *mls.MLSMessage
	welcome   *mls.MLSMessage
	tree      mls.RatchetTree // for the Welcome
	external  bool            // an external commit (new_member_commit)
	// regenerated are the hub's proposals re-issued after an external commit (proposals.go).
	regenerated []storedProposal
	before      *room.State     // room state in epoch
	policy      *room.Handshake // the commit as room.Authorize sees it
	// keyPackages are the KeyPackages the commit's Adds carry (Welcome routing, relay.go).
	keyPackages []*mls.KeyPackage
	// leaves are the leaves the commit adds or changes, and vouched the signature keys (hex) of
	// the pending Add proposals it includes (credential authority, credentials.go).
	leaves  []leafChange
	vouched map[string]bool
	// next is the room's public view after the commit when the caller computed it, and
	// groupInfo the new epoch's GroupInfo the commit came with (publicview.go).
	next      *mls.PublicGroup
	groupInfo *mls.GroupInfo
}

// acceptCommit sequences h in room inside tx (room lock held): epoch check, policy, participant
// list, room epoch, fanout to followers (outbox) and to our own clients (inbox).
func (p *Provider) acceptCommit(ctx context.Context, tx *store.Tx, room event.RoomURI, h *handshake) error {
	rr, err := dbOf(tx).loadRoom(ctx, room)
	if err != nil {
		return err
	}
	if rr == nil {
		return fmt.Errorf("provider: unknown room %s", room)
	}
	if h.epoch != rr.Epoch {
		return &errWrongEpoch{Current: rr.Epoch}
	}
	if err := p.checkPending(ctx, tx, room, h); err != nil {
		return err
	}
	if h.committer.Domain() != h.peer {
		return fmt.Errorf("%w: %s may not commit for %s", errNotAllowed, h.peer, h.committer)
	}
	usedRoutes, err := checkLeaves(ctx, tx, &vouch{own: p.cfg.Domain, room: room, submitter: h.peer, pending: h.vouched, keyPackages: h.keyPackages}, h.leaves)
	if err != nil {
		return err
	}
	after, extra, err := authorizeCommit(h)
	if err != nil {
		return err
	}
	if err := dbOf(tx).syncParticipants(ctx, room, after); err != nil {
		return err
	}
	if err := p.advancePublic(ctx, tx, room, h); err != nil {
		return err
	}
	if err := dbOf(tx).setRoomEpoch(ctx, room, h.epoch+1); err != nil {
		return err
	}
	ts := uint64(p.now().UnixMilli())
	fs, err := p.followers(ctx, tx, room)
	if err != nil {
		return err
	}
	welcomeTo, err := p.welcomeRoutes(ctx, tx, room, h) // relay.go
	if err != nil {
		return err
	}
	if err := dropRoutes(ctx, tx, room, usedRoutes); err != nil {
		return err
	}
	for _, d := range fs {
		extra[d] = true
	}
	for d := range extra {
		if d == p.cfg.Domain {
			continue
		}
		msgs := []*protocol.FanoutMessage{{Timestamp: ts, Message: h.commit, ExternalProposals: h.stapled()}}
		if h.welcome != nil && welcomeTo[d] {
			msgs = append(msgs, &protocol.FanoutMessage{Timestamp: ts, Message: h.welcome,
				RatchetTreeOption: &protocol.RatchetTreeOption{Representation: protocol.RatchetTreeFull, RatchetTree: h.tree}})
		}
		if err := p.outbox.Enqueue(ctx, tx, d, room, msgs...); err != nil {
			return fmt.Errorf("provider: enqueue fanout: %w", err)
		}
	}
	if err := insertInbox(ctx, tx, room, "", ts, h.commit, nil); err != nil {
		return err
	}
	if h.welcome != nil && welcomeTo[p.cfg.Domain] {
		if err := insertInbox(ctx, tx, room, "", ts, h.welcome, h.tree); err != nil {
			return err
		}
	}
	return p.afterCommit(ctx, tx, room, h, ts)
}

// acceptMessage sequences an application message in room inside tx (room lock held).
func (p *Provider) acceptMessage(ctx context.Context, tx *store.Tx, room event.RoomURI, peer event.Domain, sender event.UserURI, m *mls.MLSMessage) (uint64, error) {
	rr, err := dbOf(tx).loadRoom(ctx, room)
	if err != nil {
		return 0, err
	}
	if rr == nil || rr.Hub != p.cfg.Domain {
		return 0, fmt.Errorf("%w: unknown room %s", errNotAllowed, room)
	}
	snap, err := p.stateAt(ctx, tx, room, rr.Epoch)
	if err != nil {
		return 0, err
	}
	if !snap.maySend(sender) || sender.Domain() != peer {
		return 0, fmt.Errorf("%w: %s may not send in %s", errNotAllowed, sender, room)
	}
	if m.PrivateMessage.Epoch != rr.Epoch {
		return 0, &errWrongEpoch{Current: rr.Epoch}
	}
	raw, err := m.Encode()
	if err != nil {
		return 0, fmt.Errorf("provider: encode message: %w", err)
	}
	sum := sha256.Sum256(raw)
	ts := uint64(p.now().UnixMilli())
	first, err := tx.MarkProcessed(ctx, submitScope, string(room)+" "+hex.EncodeToString(sum[:]))
	p.log.Debug("message sequenced", "room", room, "peer", peer, "sender", sender, "accepted", ts,
		"ciphertext", hexValue(sum[:6]), "first", first)
	if err != nil || !first {
		return ts, err // a resubmission: accepted before
	}
	fr, err := p.frank(ctx, tx, sender, room, ts, m) // franking.go
	if err != nil {
		return 0, err
	}
	for _, d := range snap.followers(p.cfg.Domain) {
		if err := p.outbox.Enqueue(ctx, tx, d, room, &protocol.FanoutMessage{Timestamp: ts, Message: m, Frank: fr}); err != nil {
			return 0, fmt.Errorf("provider: enqueue fanout: %w", err)
		}
	}
	// Our own clients read it from the inbox, unless no adapter here needs it: no local client
	// is in the room (in any epoch: they may not have applied the latest commit yet), or the
	// sender is a local user and every local user is on the sender's network (as neededHere).
	if sender.Domain() == p.cfg.Domain {
		su, err := loadUser(ctx, tx, sender)
		if err != nil {
			return 0, err
		}
		if nets, err := p.networksOf(ctx, room, su.Network); err != nil || len(nets) == 0 {
			return ts, err
		}
	} else if locals, err := dbOf(tx).usersWithClients(ctx, room, 1); err != nil || len(locals) == 0 {
		return ts, err
	}
	if err := p.keepFrank(ctx, tx, room, m, fr, ts); err != nil {
		return 0, err
	}
	return ts, insertInbox(ctx, tx, room, sender, ts, m, nil)
}

// SubmitMessage sequences a follower's application message (protocol.HubHandler).
func (p *Provider) SubmitMessage(ctx context.Context, peer protocol.Peer, room event.RoomURI, req *protocol.SubmitMessageRequest) (*protocol.SubmitMessageResponse, error) {
	sender, err := event.ParseUserURI(string(req.SendingURI))
	if err != nil {
		p.refused("submitMessage", "not_allowed")
		return &protocol.SubmitMessageResponse{Protocol: protocol.ProtocolMLS10, StatusCode: protocol.SubmitNotAllowed}, nil
	}
	unlock := p.lockRoom(room)
	defer unlock()
	var ts uint64
	err = p.st.InGroupTx(ctx, func(tx *store.Tx) error {
		var err error
		ts, err = p.acceptMessage(ctx, tx, room, peer.Domain, sender, req.AppMessage)
		return err
	})
	var we *errWrongEpoch
	switch {
	case errors.As(err, &we):
		p.refused("submitMessage", "wrong_epoch")
		return &protocol.SubmitMessageResponse{Protocol: protocol.ProtocolMLS10, StatusCode: protocol.SubmitEpochTooOld, CurrentEpoch: we.Current}, nil
	case errors.Is(err, errNotAllowed):
		p.refused("submitMessage", "not_allowed")
		p.log.Info("message refused", "peer", peer.Domain, "err", err)
		return &protocol.SubmitMessageResponse{Protocol: protocol.ProtocolMLS10, StatusCode: protocol.SubmitNotAllowed}, nil
	case err != nil:
		return nil, err
	}
	p.outbox.Wake()
	p.kick()
	return &protocol.SubmitMessageResponse{Protocol: protocol.ProtocolMLS10, StatusCode: protocol.SubmitAccepted, AcceptedTimestamp: ts}, nil
}

// Update sequences a follower's commit or proposals (protocol.HubHandler). A provider with no
// participant in the room learns nothing of it from a refusal: whether the room does not exist,
// the handshake is for another epoch (which would name the room's epoch, or let it be probed) or
// does not apply, it gets the same notAllowed.
func (p *Provider) Update(ctx context.Context, peer protocol.Peer, room event.RoomURI, req *protocol.UpdateRequest) (*protocol.UpdateRoomResponse, error) {
	resp, err := p.update(ctx, peer, room, req)
	var se *protocol.StatusError
	unknown := errors.As(err, &se) && se.Status == http.StatusNotFound
	if (err != nil && !unknown) || (err == nil && resp.ResponseCode == protocol.UpdateSuccess) {
		return resp, err
	}
	ok, perr := p.participates(ctx, room, peer.Domain)
	switch {
	case perr != nil:
		return nil, perr
	case !ok:
		if unknown {
			p.refused("update", "not_a_participant")
		}
		return &protocol.UpdateRoomResponse{ResponseCode: protocol.UpdateNotAllowed, ErrorDescription: "not a participant of this room"}, nil
	}
	return resp, err
}

// update is Update. The hub validates a commit with the room's public view (publicview.go: the
// stored one, or one of its clients' in the room's epoch), which yields who was added and
// removed; it needs no client of its own in the room.
func (p *Provider) update(ctx context.Context, peer protocol.Peer, room event.RoomURI, req *protocol.UpdateRequest) (*protocol.UpdateRoomResponse, error) {
	b := &req.Bundle
	ct, err := b.ContentType()
	if err != nil {
		return p.refuseUpdate("invalid", protocol.UpdateInvalidProposal, err.Error()), nil
	}
	unlock := p.lockRoom(room)
	defer unlock()
	rr, err := p.hostedRoom(ctx, room)
	if err != nil {
		return nil, err
	}
	if ct == mls.ContentTypeProposal {
		return p.updateProposals(ctx, peer, room, rr, b)
	}
	if ct != mls.ContentTypeCommit || b.ProposalOrCommit.WireFormat != mls.WireFormatPublicMessage {
		return p.refuseUpdate("not_public", protocol.UpdateNotAllowed, "this hub sequences commits sent as PublicMessage only"), nil
	}
	pm := b.ProposalOrCommit.PublicMessage
	if pm.Content.Epoch != rr.Epoch {
		p.refused("update", "wrong_epoch")
		return &protocol.UpdateRoomResponse{ResponseCode: protocol.UpdateWrongEpoch, CurrentEpoch: rr.Epoch}, nil
	}
	reader, err := p.viewAt(ctx, p.st, room, rr.Epoch)
	if err != nil {
		return nil, err
	}
	if reader == nil {
		return nil, catchingUp()
	}
	external := pm.Content.Sender.Type == mls.SenderTypeNewMemberCommit
	if pm.Content.Sender.Type != mls.SenderTypeMember && !external {
		return p.refuseUpdate("not_a_member", protocol.UpdateNotAllowed, "committer is not a member"), nil
	}
	if err := cachePending(ctx, p.st, room, reader); err != nil {
		return nil, err
	}
	rec, err := reader.Process(b.ProposalOrCommit, mls.ProcessOptions{AppData: roomUpdater})
	if err != nil || rec.Commit == nil {
		return p.refuseUpdate("invalid", protocol.UpdateInvalidProposal, fmt.Sprint("commit rejected: ", err)), nil
	}
	// The committer's credential: its leaf before the commit, or the joiner's new leaf
	// (an external commit, allowed for listed participants: canAddOwnClient).
	cred := rec.Credential
	if !external {
		m, ok := reader.Member(mls.LeafIndex(pm.Content.Sender.Index))
		if !ok {
			return p.refuseUpdate("not_a_member", protocol.UpdateNotAllowed, "committer is not a member"), nil
		}
		cred = &m.Credential
	}
	committer, err := userOfCredential(cred)
	if err != nil {
		return p.refuseUpdate("credential_not_a_user", protocol.UpdateNotAllowed, err.Error()), nil
	}
	h := &handshake{peer: peer.Domain, committer: committer, epoch: rr.Epoch, commit: b.ProposalOrCommit, external: external,
		next: rec.Commit.Public, groupInfo: bundleGroupInfo(b)}
	if external {
		if h.regenerated, err = p.regenerate(ctx, room, rr.Epoch, reader, rec.Commit.Public); err != nil {
			return nil, err
		}
	}
	if err := h.describe(reader, rec.Commit, external); err != nil {
		return p.refuseUpdate("invalid", protocol.UpdateInvalidProposal, err.Error()), nil
	}
	if b.Welcome != nil {
		h.welcome = &mls.MLSMessage{Version: mls.ProtocolVersionMLS10, WireFormat: mls.WireFormatWelcome, Welcome: b.Welcome}
		if b.RatchetTreeOption != nil && b.RatchetTreeOption.Representation == protocol.RatchetTreeFull {
			h.tree = b.RatchetTreeOption.RatchetTree
		} else if h.tree, err = treeOfGroupInfo(b.GroupInfoOption); err != nil {
			return p.refuseUpdate("invalid", protocol.UpdateInvalidProposal, err.Error()), nil
		}
	}
	// Our own clients in the room apply the commit from the inbox, like every other commit.
	err = p.st.InTx(ctx, func(tx *store.Tx) error { return p.acceptCommit(ctx, tx, room, h) })
	if resp := p.updateRefusal(peer.Domain, room, err); resp != nil {
		return resp, nil
	}
	if err != nil {
		return nil, err
	}
	p.outbox.Wake()
	p.kick()
	return &protocol.UpdateRoomResponse{ResponseCode: protocol.UpdateSuccess, AcceptedTimestamp: uint64(p.now().UnixMilli())}, nil
}

// refuseUpdate is an /update refusal before sequencing, counted under reason.
func (p *Provider) refuseUpdate(reason string, code protocol.UpdateResponseCode, desc string) *protocol.UpdateRoomResponse {
	p.refused("update", reason)
	return &protocol.UpdateRoomResponse{ResponseCode: code, ErrorDescription: desc}
}

// treeOfGroupInfo returns the ratchet_tree extension of a full GroupInfo option.
func treeOfGroupInfo(o *protocol.GroupInfoOption) (mls.RatchetTree, error) {
	if o == nil || o.GroupInfo == nil {
		return nil, errors.New("provider: no ratchet tree for the Welcome")
	}
	return treeOf(o.GroupInfo)
}

func treeOf(gi *mls.GroupInfo) (mls.RatchetTree, error) {
	d, ok := gi.Extensions.Find(mls.ExtensionRatchetTree)
	if !ok {
		return nil, errors.New("provider: GroupInfo without ratchet_tree")
	}
	return mls.DecodeRatchetTree(d)
}
