package provider

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/room"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// outScope dedupes mimi.out envelopes that changed the room (membership).
const outScope store.Scope = "provider.out"

// handleOut is the mimi.out consumer: it returns nil only after the envelope's effect is durable.
// When it gives up on an envelope (a permanent error, or the bus's last delivery failed), the
// local user who sent it is told (notice.go) and the envelope is counted by kind and reason.
func (p *Provider) handleOut(ctx context.Context, d bus.Delivery) error {
	env := d.Envelope
	if env.Origin.Network == event.NetworkMIMI {
		return nil // our own publication mirrored back: nothing to send
	}
	// A room with envelopes parked for a partner that does not answer keeps its order (park.go).
	if partner, parked, err := p.db().parkedPartner(ctx, env.Room); err != nil {
		return err
	} else if parked {
		return p.park(ctx, env, partner)
	}
	err := p.out(ctx, d)
	p.log.Debug("mimi.out envelope handled", "event_id", env.ID, "kind", env.Kind.String(), "room", env.Room,
		"message_id", hexValue(env.MessageID), "seq", d.StreamSeq, "delivery", d.NumDelivered, "err", err)
	if err == nil {
		return nil
	}
	if partner, down := p.unreachablePartner(env, err); down && !errors.Is(err, bus.ErrPermanent) {
		if perr := p.park(ctx, env, partner); perr != nil {
			return errors.Join(err, perr)
		}
		p.log.Info("partner does not answer: the envelope waits for it, with the room's later ones behind it",
			"partner", partner, "room", env.Room, "event_id", env.ID, "err", err)
		return nil
	}
	if p.waitsForConsent(env, err) { // consent.go
		return p.waitForConsent(ctx, env, err)
	}
	perm := errors.Is(err, bus.ErrPermanent)
	if perm || d.Final {
		p.met.givenUp.WithLabelValues(d.Envelope.Kind.String(), reasonLabel(reasonOf(err))).Inc()
		p.noticeFailed(ctx, d.Envelope, err, !perm)
	}
	return err
}

// out handles one mimi.out envelope.
func (p *Provider) out(ctx context.Context, d bus.Delivery) error {
	env := d.Envelope
	if env.Origin.Network == event.NetworkMIMI {
		return nil // our own publication mirrored back: nothing to send
	}
	if env.Sender.Domain() != p.cfg.Domain {
		return bus.Permanent(fmt.Errorf("provider: sender %s is not ours", env.Sender))
	}
	if err := p.EnsureUser(ctx, env.Sender, env.Origin.Network); err != nil {
		return err
	}
	var err error
	switch {
	case env.Kind.HasContent():
		err = p.sendMessage(ctx, env)
	case env.Kind == event.KindMembership:
		err = p.membership(ctx, env)
	case env.Kind == event.KindRoomMetadata:
		err = p.roomMetadata(ctx, env)
	default:
		return nil
	}
	if permanent(err) {
		return bus.Permanent(err)
	}
	return err
}

// permanent reports whether err is one that the same envelope will meet again however often it
// is retried: an unknown user or room, a policy refusal, an invalid room-state change,
// proposals or commits our own MLS client refuses to make, and a provider that is not a partner.
func permanent(err error) bool {
	for _, e := range []error{ErrUnknownUser, errNotAllowed, errUnknownRoom, errInvalidState, errCannotCommit, protocol.ErrNotPartner} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

var errUnknownRoom = errors.New("provider: unknown room")

// errCannotCommit wraps the refusal of our own client to make a commit (an Add of a key already
// in the group, a Remove of a leaf that is gone): the same commit fails again on every retry.
var errCannotCommit = errors.New("provider: our client cannot make this commit")

// commitError classifies an error of mls.Group.Commit.
func commitError(err error) error {
	if errors.Is(err, mls.ErrInvalidProposal) || errors.Is(err, mls.ErrInvalidCommit) {
		return fmt.Errorf("%w: %w", errCannotCommit, err)
	}
	return fmt.Errorf("provider: commit: %w", err)
}

// markOut marks the mimi.out envelope dedupe as done in tx (nothing when dedupe is empty).
func markOut(ctx context.Context, tx *store.Tx, dedupe string) error {
	if dedupe == "" {
		return nil
	}
	_, err := tx.MarkProcessed(ctx, outScope, dedupe)
	return err
}

// membership turns an adapter's membership envelope into a commit. Adapters publish in the order
// they see things, which is not always the order MIMI needs: a join of a room that does not exist
// yet creates it (the joiner is its owner), and a join or invite of a user who is already a member
// changes nothing.
func (p *Provider) membership(ctx context.Context, env *event.Envelope) error {
	if done, err := p.st.IsProcessed(ctx, outScope, string(env.ID)); err != nil || done {
		return err
	}
	m := env.Membership
	room := env.Room
	unlock := p.lockRoom(room)
	defer unlock()
	rr, err := p.db().loadRoom(ctx, room)
	if err != nil {
		return err
	}
	if rr == nil {
		create, err := p.membershipWithoutRoom(ctx, env)
		if err != nil || !create {
			return err
		}
		if err := p.createRoom(ctx, room, env.Sender); err != nil {
			return err
		}
		if m.Action == event.MembershipJoin && m.Target == env.Sender {
			return p.markDone(ctx, env) // the joiner created the room
		}
	}
	committer := env.Sender
	var o localCommit
	switch m.Action {
	case event.MembershipInvite, event.MembershipJoin:
		in, err := p.inGroup(ctx, room, m.Target)
		if err != nil {
			return err
		}
		if in {
			return p.markDone(ctx, env)
		}
		if m.Action == event.MembershipJoin && m.Target == env.Sender {
			// A local user joins on her own: another local member's client adds her.
			if committer, err = p.localMember(ctx, room); err != nil {
				return err
			}
		}
		o.add = []event.UserURI{m.Target}
		// A 1:1 that a local user starts in a room of ours is marked as one with the peer's Add.
		o.direct = m.Action == event.MembershipInvite && m.Direct && m.Target != env.Sender && p.isHub(room)
	case event.MembershipLeave:
		return p.leave(ctx, env)
	case event.MembershipKick:
		o.remove = []event.UserURI{m.Target}
	case event.MembershipBan:
		o.remove, o.ban = []event.UserURI{m.Target}, true
	case event.MembershipRole:
		o.roles = []roleChange{{User: m.Target, Role: m.Role}}
	default:
		return nil
	}
	return p.commitLocal(ctx, room, committer, &o, string(env.ID))
}

// membershipWithoutRoom decides about a membership envelope for a room we have no state of:
// create reports whether the sender creates it (an invite or a join in a room of our domain);
// a leave is done; a room of a partner we have not been welcomed to yet is retried while its
// Welcome waits in the inbox, and refused otherwise, as is a kick, ban or role change.
func (p *Provider) membershipWithoutRoom(ctx context.Context, env *event.Envelope) (create bool, err error) {
	room := env.Room
	switch a := env.Membership.Action; {
	case a == event.MembershipLeave:
		return false, p.markDone(ctx, env)
	case !p.isHub(room) && p.inboxPending(ctx, room):
		return false, fmt.Errorf("provider: %s is not joined yet; its Welcome is still being applied", room)
	case !p.isHub(room):
		return false, fmt.Errorf("%w: %s (hosted by %s, which has not added any local user)", errUnknownRoom, room, room.Domain())
	case a == event.MembershipInvite || a == event.MembershipJoin:
		return true, nil
	}
	return false, fmt.Errorf("%w: %s", errUnknownRoom, room)
}

// markDone records a membership envelope that needed no commit as processed.
func (p *Provider) markDone(ctx context.Context, env *event.Envelope) error {
	return p.st.InTx(ctx, func(tx *store.Tx) error { return markOut(ctx, tx, string(env.ID)) })
}

// inGroup reports whether u has a client (a leaf) in room, as one of our clients sees the group.
func (p *Provider) inGroup(ctx context.Context, room event.RoomURI, u event.UserURI) (bool, error) {
	any, ok, err := p.db().firstClient(ctx, room)
	if err != nil || !ok {
		return false, err
	}
	c, err := loadClient(ctx, p.st, room, any)
	if err != nil {
		return false, err
	}
	for _, m := range c.Group.Members() {
		if mu, err := userOfCredential(&m.Credential); err == nil && mu == u {
			return true, nil
		}
	}
	return false, nil
}

// localMember returns a local user with a client in room (the first by URI).
func (p *Provider) localMember(ctx context.Context, room event.RoomURI) (event.UserURI, error) {
	u, ok, err := p.db().firstClient(ctx, room)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("%w: no local member of %s can add a joining user", errNotAllowed, room)
	}
	return u, nil
}

// leave removes the sender: its client proposes SelfRemove and the designated committer
// commits it (proposals.go).
func (p *Provider) leave(ctx context.Context, env *event.Envelope) error {
	return p.proposeLeave(ctx, env.Room, env.Sender, string(env.ID))
}

// createRoom creates room with us as hub and creator as owner (room lock held).
func (p *Provider) createRoom(ctx context.Context, room event.RoomURI, creator event.UserURI) error {
	u, err := loadUser(ctx, p.st, creator)
	if err != nil {
		return err
	}
	exts, st, err := newRoomExtensions(room, creator)
	if err != nil {
		return err
	}
	es, err := p.externalSendersExtension(ctx)
	if err != nil {
		return err
	}
	exts = append(exts, es)
	g, err := mls.CreateGroup(groupID(room), u.Signer, credentialOf(creator), mls.GroupOptions{Extensions: exts})
	if err != nil {
		return fmt.Errorf("provider: create group: %w", err)
	}
	return p.st.InTx(ctx, func(tx *store.Tx) error {
		if err := dbOf(tx).upsertRoom(ctx, room, 0, p.now()); err != nil {
			return err
		}
		if err := dbOf(tx).syncParticipants(ctx, room, st); err != nil {
			return err
		}
		return p.insertClient(ctx, tx, room, creator, g)
	})
}

// localCommit is what a local commit does: MLS Adds and Removes with the matching
// participant-list changes, role changes, a room metadata replacement.
type localCommit struct {
	add, remove []event.UserURI
	ban         bool
	roles       []roleChange
	meta        *room.Metadata
	// direct sets the 1:1 base policy (fixed membership) if the room has none and only the
	// committer in it.
	direct bool
}

// commitLocal makes committer's client commit o, sequences it (at our hub or the partner hub)
// and persists the new state (room lock held). dedupe, if set, is marked processed with it.
func (p *Provider) commitLocal(ctx context.Context, room event.RoomURI, committer event.UserURI, o *localCommit, dedupe string) error {
	c, err := loadClient(ctx, p.st, room, committer)
	if err != nil {
		return err
	}
	if err := cachePending(ctx, p.st, room, c.Group); err != nil {
		return err
	}
	u, err := loadUser(ctx, p.st, committer)
	if err != nil {
		return err
	}
	before, err := stateOfGroup(c.Group)
	if err != nil {
		return err
	}
	if err := refuseFixed(before, o.add); err != nil {
		return err
	}
	upd, err := listUpdate(before, o)
	if err != nil {
		return err
	}
	policy := directPolicy(before, o.direct, committer)
	props, err := stateProposals(upd, o.meta, policy)
	if err != nil {
		return err
	}
	opts := mls.CommitOptions{Proposals: props, AppData: roomUpdater}
	for _, t := range o.add {
		kp, err := p.keyPackageFor(ctx, room, u, t)
		if err != nil {
			return err
		}
		opts.Add = append(opts.Add, kp)
	}
	for _, t := range o.remove {
		found := false
		for _, m := range c.Group.Members() {
			if mu, err := userOfCredential(&m.Credential); err == nil && mu == t {
				opts.Remove = append(opts.Remove, m.Leaf)
				found = true
			}
		}
		if !found && !o.ban && before.Participants.Index(t) < 0 {
			return fmt.Errorf("%w: %s is not in %s", errNotAllowed, t, room)
		}
	}
	pc, err := c.Group.Commit(opts)
	if err != nil {
		return commitError(err)
	}
	// The pending proposals the commit includes may take a user's last client (a SelfRemove)
	// or add one: commit again with the list changes that go with them.
	if more, err := completeList(before, c.Group, pc.Result, upd); err != nil {
		return err
	} else if more {
		if opts.Proposals, err = stateProposals(upd, o.meta, policy); err != nil {
			return err
		}
		if pc, err = c.Group.Commit(opts); err != nil {
			return commitError(err)
		}
	}
	giMsg, err := pc.GroupInfo()
	if err != nil {
		return fmt.Errorf("provider: GroupInfo of the commit: %w", err)
	}
	gi := giMsg.GroupInfo
	var tree mls.RatchetTree
	if pc.Welcome != nil {
		if tree, err = treeOf(gi); err != nil {
			return err
		}
	}
	h := &handshake{peer: p.cfg.Domain, committer: committer, epoch: c.Group.Epoch(), commit: pc.Commit, welcome: pc.Welcome, tree: tree,
		groupInfo: gi}
	if err := h.describe(c.Group, pc.Result, false); err != nil {
		return err
	}
	if p.isHub(room) {
		return p.sequenceLocal(ctx, func(tx *store.Tx) error {
			if err := p.acceptCommit(ctx, tx, room, h); err != nil {
				return err
			}
			next, err := pc.Confirm()
			if err != nil {
				return err
			}
			if err := saveClient(ctx, tx, room, c, next); err != nil {
				return err
			}
			return markOut(ctx, tx, dedupe)
		})
	}
	b := protocol.HandshakeBundle{ProposalOrCommit: pc.Commit,
		GroupInfoOption: &protocol.GroupInfoOption{Representation: protocol.GroupInfoFull, GroupInfo: gi}}
	if pc.Welcome != nil {
		b.Welcome = pc.Welcome.Welcome
		b.RatchetTreeOption = &protocol.RatchetTreeOption{Representation: protocol.RatchetTreeFull, RatchetTree: tree}
	} else {
		b.RatchetTreeOption = &protocol.RatchetTreeOption{Representation: protocol.RatchetTreeDistributionService}
	}
	resp, err := p.client.Update(ctx, room, &protocol.UpdateRequest{Bundle: b})
	if err != nil {
		return fmt.Errorf("provider: update at hub: %w", err)
	}
	switch resp.ResponseCode {
	case protocol.UpdateSuccess:
	case protocol.UpdateWrongEpoch:
		return fmt.Errorf("provider: hub is at epoch %d, we at %d: retry after fanout", resp.CurrentEpoch, c.Group.Epoch())
	case protocol.UpdateInvalidProposal:
		if len(resp.InvalidProposals) > 0 {
			return fmt.Errorf("provider: the hub has %d pending proposal(s) we have not applied yet: retry after fanout", len(resp.InvalidProposals))
		}
		return fmt.Errorf("%w: hub refused the commit (%d): %s", errNotAllowed, resp.ResponseCode, resp.ErrorDescription)
	default:
		return fmt.Errorf("%w: hub refused the commit (%d): %s", errNotAllowed, resp.ResponseCode, resp.ErrorDescription)
	}
	next, err := pc.Confirm()
	if err != nil {
		return err
	}
	return p.st.InTx(ctx, func(tx *store.Tx) error {
		if err := saveClient(ctx, tx, room, c, next); err != nil {
			return err
		}
		if err := dbOf(tx).upsertRoom(ctx, room, next.Epoch(), p.now()); err != nil {
			return err
		}
		return markOut(ctx, tx, dedupe)
	})
}

// keyPackageFor claims one KeyPackage of target: from our own pool for our users, through
// /keyMaterial otherwise: at the target's provider for a room we host, at the room's hub for a
// room we follow (relay.go).
func (p *Provider) keyPackageFor(ctx context.Context, room event.RoomURI, requester *user, target event.UserURI) (*mls.KeyPackage, error) {
	if target.Domain() == p.cfg.Domain {
		if err := p.ensureLocal(ctx, target, requester.Network); err != nil {
			return nil, err
		}
		var kp *mls.KeyPackage
		err := p.st.InTx(ctx, func(tx *store.Tx) error {
			tu, err := loadUser(ctx, tx, target)
			if err != nil {
				return err
			}
			kp, err = p.claimKeyPackage(ctx, tx, tu, []mls.CipherSuite{p.cfg.CipherSuite})
			return err
		})
		return kp, err
	}
	req := &protocol.KeyMaterialRequest{Protocol: protocol.ProtocolMLS10,
		RequestingUser: protocol.IdentifierURI(requester.URI), TargetUser: protocol.IdentifierURI(target),
		RoomID: protocol.IdentifierURI(room), AcceptableCipherSuites: []mls.CipherSuite{p.cfg.CipherSuite},
		RequesterSignatureKey: requester.Signer.Public, RequesterCredential: credentialOf(requester.URI),
	}
	if err := req.Sign(requester.Signer.Private); err != nil {
		return nil, err
	}
	resp, err := p.client.KeyMaterial(ctx, p.claimVia(room, target), target, req)
	if err != nil {
		return nil, fmt.Errorf("provider: claim KeyPackage of %s: %w", target, claimError(err))
	}
	for _, c := range resp.Clients {
		if c.ClientStatus == protocol.KeyMaterialClientSuccess && c.KeyPackage != nil {
			if err := c.KeyPackage.Verify(); err != nil {
				return nil, fmt.Errorf("provider: KeyPackage of %s: %w", target, err)
			}
			return c.KeyPackage, p.recordClaim(ctx, room, target, c.KeyPackage)
		}
	}
	return nil, refused(keyMaterialReason(resp.UserStatus), fmt.Errorf("%w: no KeyPackage for %s (status %d)", errNotAllowed, target, resp.UserStatus))
}

// submitState is provider_msgmap.submitted: how far an outgoing application message got.
type submitState int64

const (
	// submitPending: encrypted and stored with the new MLS state, not yet accepted by the hub; a
	// redelivery resubmits the stored ciphertext (or drops it when its epoch is stale).
	submitPending submitState = 0
	// submitAccepted: the hub (ours or the partner's) accepted it; a redelivery is done.
	submitAccepted submitState = 1
	// submitRefused: the partner's hub refused it; a redelivery submits the stored ciphertext
	// again, and a stale epoch does not drop it (only pending ones are dropped).
	submitRefused submitState = 2
)

// sendMessage encrypts env's content from the sender's leaf and submits it to the room's hub.
// The ciphertext is stored with the new MLS state before it leaves, so a retry resubmits the same
// message (the hub dedupes it) instead of encrypting again.
func (p *Provider) sendMessage(ctx context.Context, env *event.Envelope) error {
	room := env.Room
	unlock := p.lockRoom(room)
	defer unlock()
	stored, submitted, found, err := p.db().sentMessage(ctx, env.ID)
	switch {
	case err != nil:
		return err
	case found && submitted == submitAccepted:
		return nil // done before a redelivery
	case found:
	default:
		c, err := p.cachedClient(ctx, room, env.Sender)
		if err != nil {
			return err
		}
		data, err := frame(c, env.Content)
		if err != nil {
			return bus.Permanent(err)
		}
		aad, err := frankAAD(env.Content, data) // franking.go
		if err != nil {
			return bus.Permanent(err)
		}
		m, err := c.Group.Encrypt(data, aad)
		if err != nil {
			return fmt.Errorf("provider: encrypt: %w", err)
		}
		if stored, err = m.Encode(); err != nil {
			return err
		}
		// At our own hub the message is sequenced in the transaction that stores it.
		hub := p.isHub(room)
		err = p.st.InGroupTx(ctx, func(tx *store.Tx) error {
			if err := saveRatchets(ctx, tx, room, c); err != nil {
				return err
			}
			state := submitPending
			if hub {
				if _, err := p.acceptMessage(ctx, tx, room, p.cfg.Domain, env.Sender, m); err != nil {
					return err
				}
				state = submitAccepted
			}
			return dbOf(tx).insertSentMessage(ctx, env.ID, room, env.MessageID, stored, state, p.now())
		})
		var we *errWrongEpoch
		if errors.As(err, &we) {
			return fmt.Errorf("provider: message for an old epoch, re-encrypting on retry: %w", err)
		}
		if err != nil {
			return fmt.Errorf("provider: store outgoing message: %w", err)
		}
		p.keepClient(room, c)
		if hub {
			p.outbox.Wake()
			p.kick()
			return nil
		}
	}
	m, err := mls.DecodeMLSMessage(stored)
	if err != nil {
		return bus.Permanent(err)
	}
	p.log.Debug("message submitted to the hub", "event_id", env.ID, "room", room, "ciphertext", digestValue(stored))
	if p.isHub(room) {
		err = p.st.InTx(ctx, func(tx *store.Tx) error {
			if _, err := p.acceptMessage(ctx, tx, room, p.cfg.Domain, env.Sender, m); err != nil {
				return err
			}
			return dbOf(tx).setSubmitted(ctx, env.ID, submitAccepted)
		})
		var we *errWrongEpoch
		if errors.As(err, &we) {
			return p.dropStale(ctx, env, err)
		}
		if err != nil {
			return err
		}
		p.outbox.Wake()
		p.kick()
		return nil
	}
	resp, err := p.client.SubmitMessage(ctx, room, &protocol.SubmitMessageRequest{Protocol: protocol.ProtocolMLS10, AppMessage: m, SendingURI: protocol.IdentifierURI(env.Sender)})
	if err != nil {
		return fmt.Errorf("provider: submit to hub: %w", err)
	}
	switch resp.StatusCode {
	case protocol.SubmitAccepted:
	case protocol.SubmitEpochTooOld:
		if c, err := loadClient(ctx, p.st, room, env.Sender); err == nil && c.Group.Epoch() < resp.CurrentEpoch && !p.inboxPending(ctx, room) {
			// We missed fanout (the hub's outbox gave up): rejoin by external commit.
			if err := p.rejoin(ctx, room, env.Sender); err != nil {
				return err
			}
		}
		return p.dropStale(ctx, env, fmt.Errorf("hub at epoch %d", resp.CurrentEpoch))
	default:
		if err := p.db().setSubmitted(ctx, env.ID, submitRefused); err != nil {
			return err
		}
		return fmt.Errorf("%w: hub refused the message", errNotAllowed)
	}
	return p.st.InGroupTx(ctx, func(tx *store.Tx) error {
		return dbOf(tx).setSubmitted(ctx, env.ID, submitAccepted)
	})
}

// dropStale forgets a stored ciphertext of an old epoch so that the redelivery encrypts again in
// the current epoch.
func (p *Provider) dropStale(ctx context.Context, env *event.Envelope, cause error) error {
	if err := p.db().dropPendingMessage(ctx, env.ID); err != nil {
		return err
	}
	return fmt.Errorf("provider: message for an old epoch, re-encrypting on retry: %w", cause)
}

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }

// NewRoomID returns a fresh random room URI of our domain.
func (p *Provider) NewRoomID() event.RoomURI {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return event.NewRoomURI(p.cfg.Domain, hex.EncodeToString(b[:]))
}

// inboxPending reports whether fanout for room is still waiting to be applied.
func (p *Provider) inboxPending(ctx context.Context, room event.RoomURI) bool {
	n, err := p.db().inboxBacklog(ctx, room)
	return err != nil || n > 0
}
