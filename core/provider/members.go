package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/room"
)

// Participant-list changes seen in an applied commit are published on mimi.in as KindMembership
// envelopes, so that the local users' adapters show them (docs/interop.md P19):
//
//	no_role → active role    Invite (Join when the user added itself), then Role when the
//	                         role is not regular
//	active → no_role         Leave when the user left (it committed, or a SelfRemove took its
//	                         clients), else Kick
//	any → banned             Ban
//	banned → no_role         Role 0 (an unban)
//	other changes            Role with the new role index
//
// Each envelope's ID is derived from the commit's bytes, the target and the action, so a
// republish after a crash is deduplicated by the bus. The network of the local user who acted
// (the committer; the leaver for a leave) is skipped: that adapter made the change.

// membershipChange is one envelope's worth of a participant-list change.
type membershipChange struct {
	action event.MembershipAction
	target event.UserURI
	actor  event.UserURI // the envelope's sender
	role   room.RoleIndex
}

// membershipChanges compares the participant lists before and after a commit by committer and
// returns the changes in a deterministic order: users of the list before in its order, then
// users new to it in the order of the list after. selfRemoved reports whether all of a user's
// removed clients went by SelfRemove.
func membershipChanges(before, after *room.ParticipantList, committer event.UserURI, selfRemoved func(event.UserURI) bool) []membershipChange {
	var out []membershipChange
	for _, p := range before.Participants {
		to := after.RoleOf(p.User)
		if to == p.Role {
			continue
		}
		c := membershipChange{target: p.User, actor: committer, role: to}
		switch {
		case to == room.RoleBanned:
			c.action = event.MembershipBan
		case to == room.RoleNone && p.Role == room.RoleBanned:
			c.action = event.MembershipRole // unban
		case to == room.RoleNone && (p.User == committer || selfRemoved(p.User)):
			c.action, c.actor = event.MembershipLeave, p.User
		case to == room.RoleNone:
			c.action = event.MembershipKick
		default:
			c.action = event.MembershipRole
		}
		out = append(out, c)
	}
	for _, p := range after.Participants {
		if before.Index(p.User) >= 0 {
			continue
		}
		if p.Role == room.RoleBanned {
			out = append(out, membershipChange{action: event.MembershipBan, target: p.User, actor: committer, role: p.Role})
			continue
		}
		c := membershipChange{action: event.MembershipInvite, target: p.User, actor: committer, role: p.Role}
		if p.User == committer {
			c.action = event.MembershipJoin
		}
		out = append(out, c)
		if p.Role != room.RoleRegular {
			out = append(out, membershipChange{action: event.MembershipRole, target: p.User, actor: committer, role: p.Role})
		}
	}
	return out
}

// selfRemovals returns a function that reports whether the commit rec removed all of a user's
// removed clients without a Remove proposal naming their leaf: those went by SelfRemove.
func selfRemovals(rec *mls.CommitResult) func(event.UserURI) bool {
	byRemove := map[uint32]bool{}
	for _, p := range rec.Proposals {
		if p.Type == mls.ProposalTypeRemove {
			byRemove[p.Removed] = true
		}
	}
	return func(u event.UserURI) bool {
		n := 0
		for _, m := range rec.Removed {
			if mu, err := userOfCredential(&m.Credential); err != nil || mu != u {
				continue
			}
			if byRemove[uint32(m.Leaf)] {
				return false
			}
			n++
		}
		return n > 0
	}
}

// publishMembership publishes the participant-list changes of an applied commit (rec, processed
// by a client in group before) to the local users' adapters.
func (p *Provider) publishMembership(ctx context.Context, r *inboxRow, before *mls.Group, rec *mls.CommitResult, committer event.UserURI) error {
	if rec == nil {
		return nil
	}
	old, err := room.StateOfGroup(before)
	if err != nil {
		p.log.Warn("inbox: room state before a commit unreadable", "room", r.room, "err", err)
		return nil
	}
	if old.Participants == nil {
		old.Participants = &room.ParticipantList{}
	}
	now, err := listAfter(old.Participants, rec)
	if err != nil {
		p.log.Warn("inbox: participant list after a commit unreadable", "room", r.room, "err", err)
		return nil
	}
	changes := membershipChanges(old.Participants, now, committer, selfRemovals(rec))
	if len(changes) == 0 {
		return nil
	}
	raw, err := r.msg.Encode()
	if err != nil {
		return err
	}
	for _, c := range changes {
		var skip event.Network
		if c.actor.Domain() == p.cfg.Domain {
			if u, err := loadUser(ctx, p.st, c.actor); err == nil {
				skip = u.Network
			}
		}
		nets, err := p.networksOf(ctx, r.room, skip)
		if err != nil {
			return err
		}
		if len(nets) == 0 {
			continue
		}
		key := fmt.Appendf(nil, "%d:%s;%d;%d;", len(c.target), c.target, c.action, c.role)
		env := &event.Envelope{ID: eventID("member", r.room, append(key, raw...)), Kind: event.KindMembership, Room: r.room,
			Sender: c.actor, Origin: event.Origin{Network: event.NetworkMIMI}, Timestamp: time.UnixMilli(int64(r.accepted)),
			Membership: &event.Membership{Action: c.action, Target: c.target, Role: c.role}}
		for _, n := range nets {
			if err := p.cfg.Bus.PublishIn(ctx, n, env); err != nil {
				return fmt.Errorf("provider: publish membership: %w", err)
			}
		}
	}
	return nil
}

// listAfter applies the commit's participant_list updates to before. It does not need the new
// group state, which a client the commit removed does not have.
func listAfter(before *room.ParticipantList, rec *mls.CommitResult) (*room.ParticipantList, error) {
	l := before
	for _, p := range rec.Proposals {
		if p.Type != mls.ProposalTypeAppDataUpdate || p.AppDataUpdate == nil || p.AppDataUpdate.Component != room.ComponentParticipantList ||
			p.AppDataUpdate.Op != mls.AppDataOpUpdate {
			continue
		}
		u, err := room.DecodeParticipantListUpdate(p.AppDataUpdate.Update)
		if err != nil {
			return nil, err
		}
		if l, err = l.Apply(u); err != nil {
			return nil, err
		}
	}
	return l, nil
}
