package matrix

import (
	"context"
	"fmt"

	"maunium.net/go/mautrix"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// userURI maps a Matrix user to MIMI: a user ID in the ghost namespace to the MIMI user it names
// (in client mode too, where no ghosts exist but a user may still write a partner user that way),
// others by the identifier mapping (@alice:hs is mimi://hs/u/alice).
func (a *Adapter) userURI(u id.UserID) (event.UserURI, error) {
	if uri, ok := a.ghosts.URI(u); ok && !a.isLocal(uri) {
		return uri, nil
	}
	return UserURIOf(u)
}

// originOf is the origin of the envelopes of Matrix event p.
func originOf(p *Parsed) event.Origin {
	return event.Origin{Room: event.NativeRoomID(p.Room), Event: event.NativeEventID(p.ID), Sender: event.NativeUserID(p.Sender)}
}

// ingestMember handles m.room.member: invites of a ghost (appservice) or of the functional account
// (client) turn the room into a portal; other changes in portals are relayed as membership
// envelopes.
func (a *Adapter) ingestMember(ctx context.Context, p *Parsed) error {
	log := a.log.With("room_id", string(p.Room), "event_id", string(p.ID))
	if a.crypto != nil {
		a.crypto.Machine().HandleMemberEvent(ctx, p.Event)
	}
	room, isPortal, err := a.portals.ByMatrix(ctx, p.Room)
	if err != nil {
		return transient(err)
	}
	if a.cfg.Mode == ModeAppservice && !isPortal && p.Membership == mevent.MembershipInvite && p.MemberTarget == a.botUserID() && !a.isOwn(p.Sender) {
		return a.acceptMgmtInvite(ctx, p) // a user's direct chat with the bot (mgmt.go)
	}
	if a.cfg.Mode == ModeClient && (p.Membership == mevent.MembershipLeave || p.Membership == mevent.MembershipBan) {
		// Someone left: the room is no longer a user's direct chat alone with the account.
		if _, err := a.st.KV(scopeKV).Delete(ctx, directKey(p.Room)); err != nil {
			return transient(err)
		}
		if p.MemberTarget == a.botUserID() { // the account left or was removed: not a MIMI member
			return a.markDone(ctx, string(p.ID))
		}
	}
	created := false
	invitedUs := p.Membership == mevent.MembershipInvite && !a.isOwn(p.Sender) &&
		((a.cfg.Mode == ModeAppservice && a.ghosts.IsGhost(p.MemberTarget)) ||
			(a.cfg.Mode == ModeClient && p.MemberTarget == a.botUserID()))
	if invitedUs {
		if a.cfg.Mode == ModeClient {
			allowed, why, err := a.inviteAllowed(ctx, p.Sender)
			if err != nil {
				return transient(err)
			}
			if !allowed {
				log.Info("invite rejected by the account's invite permissions", "inviter", string(p.Sender), "reason", why)
				if _, err := a.client.LeaveRoom(ctx, p.Room); err != nil {
					log.Warn("rejecting invite failed", "error", err)
				}
				a.metrics.inbound.WithLabelValues("invite_rejected").Inc()
				return a.markDone(ctx, string(p.ID))
			}
		}
		if !isPortal {
			if room, err = RoomURIOf(a.cfg.GatewayDomain, p.Room); err != nil {
				a.skip(ctx, p.Event, fmt.Errorf("%w: %w", ErrMalformed, err))
				return a.markDone(ctx, string(p.ID))
			}
		}
		if err := a.joinPortal(ctx, p.Room, p.MemberTarget); err != nil {
			return transient(err)
		}
		if !isPortal {
			enc, _ := a.stateStore.IsEncrypted(ctx, p.Room)
			if err := a.portals.Put(ctx, room, p.Room, enc); err != nil {
				return transient(err)
			}
			if pl, err := a.stateStore.GetPowerLevels(ctx, p.Room); err == nil && pl != nil {
				if err := a.portals.PutPowerLevels(ctx, p.Room, pl); err != nil { // the base of role changes (roles.go)
					return transient(err)
				}
			}
			if a.cfg.Mode == ModeClient && p.Event.Content.AsMember().IsDirect { // a direct chat with the account (cmdInvite)
				if _, err := a.st.KV(scopeKV).Put(ctx, directKey(p.Room), []byte{1}); err != nil {
					return transient(err)
				}
			}
			log.Info("portal created for invite", "mimi_room", string(room), "inviter", string(p.Sender))
			created = true
		}
		isPortal = true
	} else if a.isOwn(p.Sender) {
		// The bot's, the functional account's and the ghosts' own membership changes mirror
		// MIMI or are the gateway's housekeeping (inviting a local user into a portal).
		a.metrics.inbound.WithLabelValues("echo").Inc()
		return nil
	}
	if !isPortal {
		a.metrics.inbound.WithLabelValues("no_portal").Inc()
		return nil
	}
	sender, err := a.userURI(p.Sender)
	if err != nil {
		a.skip(ctx, p.Event, fmt.Errorf("%w: %w", ErrMalformed, err))
		return a.markDone(ctx, string(p.ID))
	}
	target, err := a.userURI(p.MemberTarget)
	if err != nil {
		a.skip(ctx, p.Event, fmt.Errorf("%w: %w", ErrMalformed, err))
		return a.markDone(ctx, string(p.ID))
	}
	if invitedUs && a.cfg.Mode == ModeClient {
		// The functional account is how the room reaches MIMI, not a member of it: the room
		// starts with its inviter (the provider creates it on the first membership envelope).
		target = sender
		p.Membership = mevent.MembershipJoin
	}
	action := p.MembershipAction()
	m := &event.Membership{Action: action, Target: target, Reason: p.MembershipReason(),
		// An invite into a direct chat (is_direct) starts a 1:1: the provider marks the MIMI room so.
		Direct: action == event.MembershipInvite && p.Event.Content.AsMember().IsDirect}
	env, err := a.core.Envelope(bridges.Outgoing{Kind: event.KindMembership, Room: room, Sender: sender, Timestamp: p.Timestamp,
		Membership: m, Origin: originOf(p)})
	if err != nil {
		a.skip(ctx, p.Event, fmt.Errorf("%w: %w", ErrMalformed, err))
		return a.markDone(ctx, string(p.ID))
	}
	if created {
		// The room's other members of this homeserver joined before it reached MIMI: they join
		// the MIMI room after the envelope that creates it. Everything is on the bus before the
		// invite counts as handled (a.publish); a redelivery publishes the same IDs again, which
		// the bus drops.
		if err := a.pub.PublishOut(ctx, env); err != nil {
			return transient(fmt.Errorf("matrix: publish %s: %w", p.ID, err))
		}
		if err := a.publishMembers(ctx, room, p, sender); err != nil {
			return err
		}
	}
	return a.publish(ctx, p, env)
}

// publishMembers publishes a join of every member of a new portal who is a user of this
// homeserver, other than the inviter and the gateway's own users.
func (a *Adapter) publishMembers(ctx context.Context, room event.RoomURI, p *Parsed, inviter event.UserURI) error {
	members, err := a.stateStore.GetRoomMembers(ctx, p.Room, mevent.MembershipJoin)
	if err != nil {
		return transient(fmt.Errorf("matrix: members of %s: %w", p.Room, err))
	}
	for u := range members {
		uri, err := UserURIOf(u)
		if err != nil || a.isOwn(u) || uri == inviter || !a.isLocal(uri) {
			continue
		}
		env, err := a.core.Envelope(bridges.Outgoing{Kind: event.KindMembership, Room: room, Sender: uri, Timestamp: p.Timestamp,
			ID:         event.NewEventID(event.NetworkMatrix, event.NativeRoomID(p.Room), event.NativeEventID("member "+string(u)+" "+string(p.ID))),
			Membership: &event.Membership{Action: event.MembershipJoin, Target: uri}, Origin: event.Origin{Room: event.NativeRoomID(p.Room), Sender: event.NativeUserID(u)}})
		if err != nil {
			a.log.Debug("join of a member not relayed", "room_id", string(p.Room), "user", string(u), "error", err)
			continue
		}
		if err := a.pub.PublishOut(ctx, env); err != nil {
			return transient(fmt.Errorf("matrix: publish the join of %s: %w", u, err))
		}
		a.metrics.inbound.WithLabelValues("published").Inc()
	}
	return nil
}

// joinPortal makes the invited ghost (or the functional account) join, and in appservice mode
// brings the bot in too: its device must be a member to receive the room's Megolm keys.
func (a *Adapter) joinPortal(ctx context.Context, room id.RoomID, invited id.UserID) error {
	if a.cfg.Mode == ModeClient {
		if _, err := a.client.JoinRoomByID(ctx, room); err != nil {
			return fmt.Errorf("matrix: join %s: %w", room, err)
		}
		if _, err := a.client.State(ctx, room); err != nil {
			return fmt.Errorf("matrix: state of %s: %w", room, err)
		}
		return nil
	}
	ghost := a.as.Intent(invited)
	if err := a.ensureGhost(ctx, invited); err != nil {
		return err
	}
	if err := ghost.EnsureJoined(ctx, room); err != nil {
		return fmt.Errorf("matrix: ghost join %s: %w", room, err)
	}
	bot := a.as.BotIntent()
	if _, err := ghost.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: bot.UserID}); err != nil {
		a.log.Debug("inviting the bot failed (it may be in the room already)", "room_id", string(room), "error", err)
	}
	if err := bot.EnsureJoined(ctx, room); err != nil {
		return fmt.Errorf("matrix: bot join %s: %w", room, err)
	}
	if _, err := bot.State(ctx, room); err != nil {
		return fmt.Errorf("matrix: state of %s: %w", room, err)
	}
	return nil
}
