package matrix

import (
	"context"
	"fmt"

	"maunium.net/go/mautrix"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/membership"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/portals"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/powerlevels"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// Room roles ↔ Matrix power levels: bridges/matrix/powerlevels (docs/matrix.md "Roles").

// ingestPowerLevels turns the role changes of an m.room.power_levels event in a portal into
// MembershipRole envelopes, one per user whose role changed, and records the new levels.
func (a *Adapter) ingestPowerLevels(ctx context.Context, p *Parsed) error {
	r, ok, err := a.portals.ByMatrix(ctx, p.Room)
	if err != nil {
		return transient(err)
	}
	if !ok {
		a.metrics.inbound.WithLabelValues("no_portal").Inc()
		return nil
	}
	now := p.Event.Content.AsPowerLevels()
	prev, err := a.portals.PrevPowerLevels(ctx, p.Event)
	if err != nil {
		return transient(err)
	}
	done := func() error {
		err := a.st.InTx(ctx, func(tx *store.Tx) error {
			if err := (portals.Table{Q: tx}).PutPowerLevels(ctx, p.Room, now); err != nil {
				return err
			}
			_, err := tx.MarkProcessed(ctx, scopeEvent, string(p.ID))
			return err
		})
		if err != nil {
			return transient(err)
		}
		return nil
	}
	if a.isOwn(p.Sender) {
		a.metrics.inbound.WithLabelValues("echo").Inc()
		return done()
	}
	sender, err := a.userURI(p.Sender)
	if err != nil {
		a.skip(ctx, p.Event, fmt.Errorf("%w: %w", ErrMalformed, err))
		return done()
	}
	for _, c := range powerlevels.Changes(prev, now) {
		if c.User == a.botUserID() {
			continue
		}
		target, err := a.userURI(c.User)
		if err != nil {
			a.log.Debug("power level of a user without a MIMI identity skipped", "room_id", string(p.Room), "user", string(c.User))
			continue
		}
		env, err := a.core.Envelope(bridges.Outgoing{Kind: event.KindMembership, Room: r, Sender: sender, Timestamp: p.Timestamp,
			ID:         event.NewEventID(event.NetworkMatrix, event.NativeRoomID(p.Room), event.NativeEventID(string(p.ID)+"|"+string(c.User))),
			Membership: &event.Membership{Action: event.MembershipRole, Target: target, Role: c.Role}, Origin: originOf(p)})
		if err != nil {
			a.log.Debug("role change not relayed", "room_id", string(p.Room), "user", string(c.User), "error", err)
			continue
		}
		if err := a.pub.PublishOut(ctx, env); err != nil {
			return transient(fmt.Errorf("matrix: publish %s: %w", p.ID, err))
		}
		a.metrics.inbound.WithLabelValues("published").Inc()
	}
	return done()
}

// renderRole shows a MIMI role change in the portal: a power-level change set by the bot
// (appservice) or the functional account (client) when it has the power, else a notice (client
// mode) or a log line (appservice). Role 0 lifts a ban, role 1 is a ban.
func (a *Adapter) renderRole(ctx context.Context, o *outbound) (id.EventID, error) {
	m := o.env.Membership
	target := a.matrixUser(m.Target)
	actor := a.client
	if a.cfg.Mode == ModeAppservice {
		actor = a.as.BotIntent().Client
	}
	role := m.Role
	switch role {
	case event.RoleNone:
		_, err := actor.UnbanUser(ctx, o.room, &mautrix.ReqUnbanUser{UserID: target})
		return "", membership.IgnoreHTTP(err, "M_FORBIDDEN")
	case event.RoleBanned:
		_, err := actor.BanUser(ctx, o.room, &mautrix.ReqBanUser{UserID: target, Reason: m.Reason})
		return "", membership.IgnoreHTTP(err, "M_FORBIDDEN")
	}
	pl := &mevent.PowerLevelsEventContent{}
	if err := actor.StateEvent(ctx, o.room, mevent.StatePowerLevels, "", pl); err != nil {
		return "", fmt.Errorf("matrix: power levels of %s: %w", o.room, err)
	}
	level, ok := powerlevels.LevelOf(pl, role)
	if !ok {
		a.log.Debug("role without a power level skipped", "room_id", string(o.room), "role", m.Role)
		return "", nil
	}
	if powerlevels.RoleOf(pl, pl.GetUserLevel(target)) == role {
		return "", nil
	}
	self := actor.UserID
	can := pl.GetUserLevel(self) >= pl.GetEventLevel(mevent.StatePowerLevels) && pl.EnsureUserLevelAs(self, target, level)
	if !can {
		if a.cfg.Mode == ModeAppservice {
			a.log.Info("role change not shown: the bot lacks the power", "room_id", string(o.room), "user", string(target), "role", m.Role)
			return "", nil
		}
		text := bridges.Say(a.lang(), bridges.PhraseRoleChanged, target, bridges.RoleName(a.lang(), role))
		return o.send(ctx, mevent.EventMessage, &mevent.MessageEventContent{MsgType: mevent.MsgNotice, Body: text})
	}
	resp, err := actor.SendStateEvent(ctx, o.room, mevent.StatePowerLevels, "", pl)
	if err != nil {
		return "", fmt.Errorf("matrix: power levels of %s: %w", o.room, err)
	}
	// Our event comes back marked processed (render): record the levels it set here.
	if err := a.portals.PutPowerLevels(ctx, o.room, pl); err != nil {
		return "", err
	}
	return resp.EventID, nil
}
