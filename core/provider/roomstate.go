package provider

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/room"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// The room state (participant list, roles, metadata) lives in each room's GroupContext
// (core/room). The MLS state is the source of truth: the hub authorizes every commit with
// room.Authorize against the state its own client computed before the commit, and
// provider_participants is only an index rewritten from the accepted state in the accepting
// transaction (followers() and GroupInfo read it).

// newRoomExtensions are the GroupContext extensions of a room we create: roomExtensions
// (content_media_types) plus the room state with creator as owner.
func newRoomExtensions(r event.RoomURI, creator event.UserURI) (mls.Extensions, *room.State, error) {
	exts, err := roomExtensions()
	if err != nil {
		return nil, nil, err
	}
	st := room.NewState(r, creator)
	for i, e := range exts {
		if e.Type != mls.ExtensionAppDataDictionary {
			continue
		}
		d, err := mls.ParseAppDataDictionary(e.Data)
		if err != nil {
			return nil, nil, err
		}
		if d, err = st.Put(d); err != nil {
			return nil, nil, err
		}
		if exts[i], err = d.Extension(); err != nil {
			return nil, nil, err
		}
	}
	return exts, st, nil
}

// policyHandshake describes an applied commit for room.Authorize: the users of the clients
// added (Add proposals; the joiner of an external commit) and removed, and each user's client
// count after the commit, computed from before (the group in the commit's epoch).
func policyHandshake(before groupView, r *mls.CommitResult, committer event.UserURI, submitter event.Domain, external bool) (*room.Handshake, error) {
	h := &room.Handshake{Committer: committer, Submitter: submitter, External: external, Proposals: r.Proposals,
		ClientsAfter: map[event.UserURI]int{}}
	for _, m := range before.Members() {
		u, err := userOfCredential(&m.Credential)
		if err != nil {
			return nil, fmt.Errorf("%w: member %d: %w", room.ErrInvalid, m.Leaf, err)
		}
		h.ClientsAfter[u]++
	}
	for _, m := range r.Removed {
		u, err := userOfCredential(&m.Credential)
		if err != nil {
			return nil, fmt.Errorf("%w: removed member: %w", room.ErrInvalid, err)
		}
		h.RemovedClients = append(h.RemovedClients, u)
		h.ClientsAfter[u]--
	}
	for _, p := range r.Proposals {
		if p.Type != mls.ProposalTypeAdd || p.KeyPackage == nil {
			continue
		}
		u, err := userOfCredential(&p.KeyPackage.LeafNode.Credential)
		if err != nil {
			return nil, fmt.Errorf("%w: added member: %w", room.ErrInvalid, err)
		}
		h.AddedClients = append(h.AddedClients, u)
		h.ClientsAfter[u]++
	}
	if external {
		h.AddedClients = append(h.AddedClients, committer)
		h.ClientsAfter[committer]++
	}
	return h, nil
}

// listUpdate is the participant_list update that carries o's changes to the room state st:
// list adds for users not yet listed, removals, bans and role changes (role 0 is a removal from
// the list, which the policy allows for a banned user: an unban).
func listUpdate(st *room.State, o *localCommit) (*room.ParticipantListUpdate, error) {
	u := &room.ParticipantListUpdate{}
	for _, t := range o.add {
		if st.RoleOf(t) == room.RoleNone && !slices.ContainsFunc(u.Added, func(p room.Participant) bool { return p.User == t }) {
			u.Added = append(u.Added, room.Participant{User: t, Role: room.RoleRegular})
		}
	}
	for _, t := range o.remove {
		i := st.Participants.Index(t)
		switch {
		case o.ban && i >= 0:
			u.Changed = append(u.Changed, room.RoleChange{Index: uint32(i), Role: room.RoleBanned})
		case o.ban:
			u.Added = append(u.Added, room.Participant{User: t, Role: room.RoleBanned})
		case i >= 0:
			u.Removed = append(u.Removed, uint32(i))
		}
	}
	for _, rc := range o.roles {
		i := st.Participants.Index(rc.User)
		if i < 0 {
			return nil, fmt.Errorf("%w: %s is not a participant", errNotAllowed, rc.User)
		}
		if rc.Role == room.RoleNone { // role 0 leaves the list: an unban (P19)
			u.Removed = append(u.Removed, uint32(i))
			continue
		}
		u.Changed = append(u.Changed, room.RoleChange{Index: uint32(i), Role: rc.Role})
	}
	return u, nil
}

// directPolicy is the base policy a local commit sets: the 1:1 policy when direct is asked for a
// room that has no base policy yet and committer as its only participant, else none.
func directPolicy(before *room.State, direct bool, committer event.UserURI) *room.BasePolicy {
	if !direct || before.Policy != nil || len(before.Participants.Participants) != 1 || before.Participants.Participants[0].User != committer {
		return nil
	}
	return room.DirectPolicy()
}

// refuseFixed refuses, before our client commits, to add users to a room whose base policy fixes
// its membership (a 1:1): its hub refuses such a commit (room.Authorize), and a partner hub's
// refusal would not tell the person why.
func refuseFixed(before *room.State, add []event.UserURI) error {
	if len(add) == 0 || !before.Policy.Direct() {
		return nil
	}
	return fmt.Errorf("%w: %w: %v cannot be added", errNotAllowed, room.ErrFixedMembership, add)
}

// directPeer returns the other participant of a 1:1 room (base policy with fixed membership and
// two participants, one of them self), or "".
func directPeer(st *room.State, self event.UserURI) event.UserURI {
	if !st.Policy.Direct() {
		return ""
	}
	var peer event.UserURI
	n := 0
	for _, pt := range st.Participants.Participants {
		if pt.Role == room.RoleBanned {
			continue
		}
		n++
		if pt.User != self {
			peer = pt.User
		}
	}
	if n != 2 {
		return ""
	}
	return peer
}

// stateProposals are the AppDataUpdate proposals of a local commit: u (unless empty), for a
// metadata change one room_metadata update, and a base_room_policy update when policy is set.
func stateProposals(u *room.ParticipantListUpdate, meta *room.Metadata, policy *room.BasePolicy) ([]mls.Proposal, error) {
	var out []mls.Proposal
	if policy != nil {
		p, err := policy.Proposal()
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	if len(u.Added)+len(u.Removed)+len(u.Changed) > 0 {
		p, err := u.Proposal()
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	if meta != nil {
		p, err := meta.Proposal()
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// completeList adds to u the list changes that the pending proposals a commit includes bring
// along (r is the commit as made by g, a client in st's epoch): a listed, not banned user whose
// last client is removed leaves the list (a SelfRemove is a leave), and a user whose client is
// added but who is not listed joins as regular. It reports whether u changed.
func completeList(st *room.State, g *mls.Group, r *mls.CommitResult, u *room.ParticipantListUpdate) (bool, error) {
	h, err := policyHandshake(g, r, "", "", false)
	if err != nil {
		return false, err
	}
	touched := map[event.UserURI]bool{}
	for _, i := range u.Removed {
		touched[st.Participants.Participants[i].User] = true
	}
	for _, c := range u.Changed {
		touched[st.Participants.Participants[c.Index].User] = true
	}
	for _, a := range u.Added {
		touched[a.User] = true
	}
	changed := false
	for _, v := range h.RemovedClients {
		i := st.Participants.Index(v)
		if touched[v] || h.ClientsAfter[v] > 0 || i < 0 || st.Participants.Participants[i].Role == room.RoleBanned {
			continue
		}
		touched[v], changed = true, true
		u.Removed = append(u.Removed, uint32(i))
	}
	for _, v := range h.AddedClients {
		if touched[v] || st.RoleOf(v) != room.RoleNone {
			continue
		}
		touched[v], changed = true, true
		u.Added = append(u.Added, room.Participant{User: v, Role: room.RoleRegular})
	}
	return changed, nil
}

// notePending records in h's policy what a pending proposal the commit includes does (called by
// checkPending): the hub authorized it when it accepted it.
func (h *handshake) notePending(s *storedProposal) {
	fc, ok := s.content()
	if !ok {
		return
	}
	if fc.Proposal.Type == mls.ProposalTypeAdd && fc.Proposal.KeyPackage != nil {
		if h.vouched == nil {
			h.vouched = map[string]bool{}
		}
		h.vouched[hex.EncodeToString(fc.Proposal.KeyPackage.LeafNode.SignatureKey)] = true
	}
	if h.policy == nil || s.Target == "" {
		return
	}
	switch fc.Proposal.Type {
	case mls.ProposalTypeSelfRemove, mls.ProposalTypeRemove:
		if h.policy.ProposedRemovals == nil {
			h.policy.ProposedRemovals = map[event.UserURI]bool{}
		}
		h.policy.ProposedRemovals[s.Target] = true
	case mls.ProposalTypeAdd:
		if h.policy.ProposedAdds == nil {
			h.policy.ProposedAdds = map[event.UserURI]bool{}
		}
		h.policy.ProposedAdds[s.Target] = true
	}
}

// activeRole reports whether u is listed in st with a role other than banned.
func activeRole(st *room.State, u event.UserURI) bool {
	r := st.RoleOf(u)
	return r != room.RoleNone && r != room.RoleBanned
}

// isBanned reports whether u is banned in st.
func isBanned(st *room.State, u event.UserURI) bool { return st.RoleOf(u) == room.RoleBanned }

// mayRemoveOthers reports whether u's role may remove other participants (or their clients).
func mayRemoveOthers(st *room.State, u event.UserURI) bool {
	return st.Can(u, room.CanRemoveParticipant) || st.Can(u, room.CanKick)
}

// mayAdd reports whether u's role may add participants.
func mayAdd(st *room.State, u event.UserURI) bool { return st.Can(u, room.CanAddParticipant) }

// roomSnapshot is a room's state at one epoch with the users that have clients in the group.
type roomSnapshot struct {
	epoch  uint64
	state  *room.State
	active map[event.UserURI]int
	// domains are the providers of the participants not banned, in list order (the followers
	// of a room we host, and our own domain).
	domains []event.Domain
}

// followers returns the providers other than self with participants in the room (as
// Provider.followers reads them from provider_participants, without a query per message).
func (s *roomSnapshot) followers(self event.Domain) []event.Domain {
	var out []event.Domain
	for _, d := range s.domains {
		if d != self {
			out = append(out, d)
		}
	}
	return out
}

// snapshots caches the hub's room state per room at the room's epoch (acceptMessage reads it
// for every message; decoding the MLS state each time would cost more than the message).
type snapshots struct {
	mu sync.Mutex
	m  map[event.RoomURI]*roomSnapshot
}

// maxSnapshots bounds the cache; beyond it the cache starts over.
const maxSnapshots = 4096

func snapshotOf(g groupView) (*roomSnapshot, error) {
	st, err := stateOfGroup(g)
	if err != nil {
		return nil, err
	}
	s := &roomSnapshot{epoch: g.Epoch(), state: st, active: map[event.UserURI]int{}}
	for _, m := range g.Members() {
		if u, err := userOfCredential(&m.Credential); err == nil {
			s.active[u]++
		}
	}
	if st.Participants != nil {
		seen := map[event.Domain]bool{}
		for _, pt := range st.Participants.Participants {
			if d := pt.User.Domain(); pt.Role != room.RoleBanned && !seen[d] {
				seen[d] = true
				s.domains = append(s.domains, d)
			}
		}
	}
	return s, nil
}

// stateAt returns room's state at epoch, from the cache or from the room's public view at that
// epoch (publicview.go; room lock held).
func (p *Provider) stateAt(ctx context.Context, q store.Querier, r event.RoomURI, epoch uint64) (*roomSnapshot, error) {
	p.snaps.mu.Lock()
	s := p.snaps.m[r]
	p.snaps.mu.Unlock()
	if s != nil && s.epoch == epoch {
		return s, nil
	}
	v, err := p.viewAt(ctx, q, r, epoch)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, &protocol.StatusError{Status: http.StatusServiceUnavailable, RetryAfter: time.Second, Detail: "room state catching up"}
	}
	if s, err = snapshotOf(v); err != nil {
		return nil, fmt.Errorf("provider: room state of %s: %w", r, err)
	}
	p.snaps.mu.Lock()
	if p.snaps.m == nil || len(p.snaps.m) >= maxSnapshots {
		p.snaps.m = map[event.RoomURI]*roomSnapshot{}
	}
	p.snaps.m[r] = s
	p.snaps.mu.Unlock()
	return s, nil
}

// roomMetadata turns an adapter's KindRoomMetadata envelope into a room_metadata commit by the
// sender's client: a non-empty name replaces room_name, a non-empty topic room_subject
// (docs/interop.md P17).
func (p *Provider) roomMetadata(ctx context.Context, env *event.Envelope) error {
	if env.Metadata == nil {
		return nil
	}
	if done, err := p.st.IsProcessed(ctx, outScope, string(env.ID)); err != nil || done {
		return err
	}
	unlock := p.lockRoom(env.Room)
	defer unlock()
	c, err := loadClient(ctx, p.st, env.Room, env.Sender)
	if err != nil {
		return err
	}
	st, err := room.StateOfGroup(c.Group)
	if err != nil {
		return err
	}
	m := room.Metadata{RoomURI: env.Room}
	if st.Metadata != nil {
		m = *st.Metadata
	}
	if env.Metadata.Name != "" {
		m.Name = env.Metadata.Name
	}
	if env.Metadata.Topic != "" {
		m.Subject = env.Metadata.Topic
	}
	if err := m.Validate(); err != nil {
		return fmt.Errorf("%w: %w", errNotAllowed, err)
	}
	if st.Metadata != nil && st.Metadata.Equal(&m) {
		_, err := p.st.MarkProcessed(ctx, outScope, string(env.ID))
		return err
	}
	return p.commitLocal(ctx, env.Room, env.Sender, &localCommit{meta: &m}, string(env.ID))
}

// publishMetadata tells the local users' adapters about a room metadata change seen in an
// applied commit (except the network of a local committer, which made the change).
func (p *Provider) publishMetadata(ctx context.Context, r *inboxRow, committer event.UserURI, m *room.Metadata) error {
	var skip event.Network
	if committer.Domain() == p.cfg.Domain {
		if u, err := loadUser(ctx, p.st, committer); err == nil {
			skip = u.Network
		}
	}
	nets, err := p.networksOf(ctx, r.room, skip)
	if err != nil {
		return err
	}
	raw, err := r.msg.Encode()
	if err != nil {
		return err
	}
	env := &event.Envelope{ID: eventID("meta", r.room, raw), Kind: event.KindRoomMetadata, Room: r.room, Sender: committer,
		Origin: event.Origin{Network: event.NetworkMIMI}, Timestamp: time.UnixMilli(int64(r.accepted)),
		Metadata: &event.Metadata{Name: m.Name, Topic: m.Subject}}
	for _, n := range nets {
		if err := p.cfg.Bus.PublishIn(ctx, n, env); err != nil {
			return fmt.Errorf("provider: publish room metadata: %w", err)
		}
	}
	return nil
}

// metadataChange returns the new metadata when rec (processed by a client in group before)
// changed it.
func metadataChange(before *mls.Group, rec *mls.CommitResult) (*room.Metadata, bool) {
	if rec == nil || rec.State == nil {
		return nil, false
	}
	touched := slices.ContainsFunc(rec.Proposals, func(p mls.Proposal) bool {
		return p.Type == mls.ProposalTypeAppDataUpdate && p.AppDataUpdate != nil && p.AppDataUpdate.Component == room.ComponentRoomMetadata
	})
	if !touched {
		return nil, false
	}
	old, err1 := room.StateOfGroup(before)
	now, err2 := room.StateOfGroup(rec.State)
	if err := errors.Join(err1, err2); err != nil || now.Metadata == nil {
		return nil, false
	}
	if old.Metadata != nil && old.Metadata.Equal(now.Metadata) {
		return nil, false
	}
	return now.Metadata, true
}

// authorizeCommit checks h against the room policy (room.Authorize) and returns the state after
// it and the domains that must see the commit although they may have no participant left (those
// of users removed or banned, and of removed clients). A refusal wraps errNotAllowed; an invalid
// commit wraps room.ErrInvalid.
func authorizeCommit(h *handshake) (*room.State, map[event.Domain]bool, error) {
	out, err := room.Authorize(h.before, h.policy)
	if errors.Is(err, room.ErrNotAllowed) {
		return nil, nil, fmt.Errorf("%w: %w", errNotAllowed, err)
	}
	if err != nil {
		return nil, nil, err
	}
	extra := map[event.Domain]bool{}
	for _, c := range out.Changes {
		if c.To == room.RoleNone || c.To == room.RoleBanned {
			extra[c.User.Domain()] = true
		}
	}
	for _, u := range h.policy.RemovedClients {
		extra[u.Domain()] = true
	}
	return out.After, extra, nil
}

// maySend reports whether sender may send an application message in the room state s: an
// active participant (a client in the group) whose role holds canSendMessage.
func (s *roomSnapshot) maySend(sender event.UserURI) bool {
	return s.active[sender] > 0 && s.state.Can(sender, room.CanSendMessage)
}

// roomUpdater folds AppDataUpdates in every commit our clients make or process.
var roomUpdater mls.AppDataUpdater = room.Updater{}

// errInvalidState is an invalid room-state change (invalidProposal on the wire).
var errInvalidState = room.ErrInvalid

// describe fills h.before and h.policy from a commit applied by a client in group before.
func (h *handshake) describe(before groupView, r *mls.CommitResult, external bool) error {
	st, err := stateOfGroup(before)
	if err != nil {
		return err
	}
	h.before = st
	h.keyPackages = addedKeyPackages(r) // Welcome routing (relay.go)
	h.leaves = leafChanges(before, r)   // credential authority (credentials.go)
	h.policy, err = policyHandshake(before, r, h.committer, h.peer, external)
	return err
}

// For code whose room parameter hides the room package:

// bannedRole is the ban role.
const bannedRole = room.RoleBanned

// stateOfGroup is room.StateOfGroup for a client's group or the room's public view.
func stateOfGroup(g groupView) (*room.State, error) {
	d, err := g.AppData()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", room.ErrInvalid, err)
	}
	return room.StateOf(d)
}

// roleChange asks for user's role to become Role.
type roleChange struct {
	User event.UserURI
	Role room.RoleIndex
}

// roomStateApplied runs once per commit our inbox applies (g is a client of ours in the commit's
// epoch that processed it into rec): at a follower it re-checks the commit against the room
// policy, and participant-list and room metadata changes are published to the local users'
// adapters.
func (p *Provider) roomStateApplied(ctx context.Context, r *inboxRow, g *mls.Group, rec *mls.Received) error {
	committer, err := userOfCredential(rec.Credential)
	if err != nil {
		p.log.Warn("inbox: commit by a committer without a user URI", "room", r.room, "err", err)
		return nil
	}
	if !p.isHub(r.room) {
		p.verifyCommit(ctx, r.room, g, rec, committer)
	}
	if err := p.publishMembership(ctx, r, g, rec.Commit, committer); err != nil {
		return err
	}
	if m, ok := metadataChange(g, rec.Commit); ok {
		return p.publishMetadata(ctx, r, committer, m)
	}
	return nil
}

// verifyCommit re-checks at a follower a commit the hub sequenced (protocol-06 §7.5: all members
// verify the room-state rules). A refusal is logged and counted, not enforced: the hub
// sequences the room, and a member that refused a sequenced commit would leave the group's
// history; a hub that accepts such commits is misbehaving and its operator must be told.
func (p *Provider) verifyCommit(ctx context.Context, r event.RoomURI, g *mls.Group, rec *mls.Received, committer event.UserURI) {
	h := &handshake{peer: committer.Domain(), committer: committer, epoch: g.Epoch()}
	err := h.describe(g, rec.Commit, rec.Sender.Type == mls.SenderTypeNewMemberCommit)
	if err == nil {
		var pend []storedProposal
		if pend, err = loadProposals(ctx, p.st, r, g.Epoch()); err == nil {
			for i := range pend {
				h.notePending(&pend[i])
			}
			_, _, err = authorizeCommit(h)
		}
	}
	if err != nil {
		p.policyRefusals.Add(1)
		p.log.Warn("inbox: the hub sequenced a commit that the room policy refuses", "room", r, "epoch", g.Epoch(), "err", err)
	}
}
