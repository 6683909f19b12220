package matrix

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"maunium.net/go/mautrix"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/mxevent"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// Room roles ↔ Matrix power levels (docs/matrix.md "Roles"). A room's own power levels set the
// thresholds: a user who may kick or ban (the lower of the two levels, and above users_default)
// is an admin, a user at 100 or more (or at the admin level when that is 100 or more) is the
// owner, everyone else is regular.

// MaxPowerUsers bounds the users map of an m.room.power_levels event the adapter reads.
const MaxPowerUsers = mxevent.MaxPowerUsers

// roleLevels returns the admin and owner thresholds of pl.
func roleLevels(pl *mevent.PowerLevelsEventContent) (admin, owner int) {
	admin = max(min(pl.Kick(), pl.Ban()), pl.UsersDefault+1)
	return admin, max(100, admin)
}

// roleOfLevel maps a power level to a room role under pl's thresholds.
func roleOfLevel(pl *mevent.PowerLevelsEventContent, level int) event.Role {
	admin, owner := roleLevels(pl)
	switch {
	case level >= owner:
		return event.RoleOwner
	case level >= admin:
		return event.RoleAdmin
	}
	return event.RoleRegular
}

// levelOfRole is the power level that gives role under pl: the owner threshold, the level that
// may both kick and ban for an admin (below the owner threshold), users_default for a regular
// user. ok is false for roles that are not power levels (banned, none, unknown).
func levelOfRole(pl *mevent.PowerLevelsEventContent, r event.Role) (level int, ok bool) {
	admin, owner := roleLevels(pl)
	switch r {
	case event.RoleOwner:
		return owner, true
	case event.RoleAdmin:
		l := max(pl.Kick(), pl.Ban(), admin)
		if l >= owner {
			l = max(owner-1, admin)
		}
		return l, true
	case event.RoleRegular:
		return pl.UsersDefault, true
	}
	return 0, false
}

// roleChanges returns the users whose role differs between prev (nil: none known; everyone had
// users_default) and now, in a stable order, with their new role. Only users listed in either
// users map are considered.
func roleChanges(prev, now *mevent.PowerLevelsEventContent) []powerChange {
	if prev == nil {
		prev = &mevent.PowerLevelsEventContent{UsersDefault: now.UsersDefault, KickPtr: now.KickPtr, BanPtr: now.BanPtr}
	}
	users := map[id.UserID]bool{}
	for u := range prev.Users {
		users[u] = true
	}
	for u := range now.Users {
		users[u] = true
	}
	var out []powerChange
	for u := range users {
		from, to := roleOfLevel(prev, prev.GetUserLevel(u)), roleOfLevel(now, now.GetUserLevel(u))
		if from != to {
			out = append(out, powerChange{user: u, role: to})
		}
	}
	slices.SortFunc(out, func(a, b powerChange) int { return strings.Compare(string(a.user), string(b.user)) })
	return out
}

type powerChange struct {
	user id.UserID
	role event.Role
}

// prevPowerLevels returns the content an m.room.power_levels event replaces: the content the
// adapter last recorded for the room, else the homeserver's unsigned.prev_content, else nil
// (unknown: everyone had users_default).
func (a *Adapter) prevPowerLevels(ctx context.Context, evt *mevent.Event) (*mevent.PowerLevelsEventContent, error) {
	var raw string
	err := a.st.QueryRowContext(ctx, `SELECT content FROM matrix_power_levels WHERE mx_room = ?`, string(evt.RoomID)).Scan(&raw)
	switch {
	case err == nil:
		return decodePowerLevels([]byte(raw)), nil
	case !errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("matrix: power levels of %s: %w", evt.RoomID, err)
	}
	if pc := evt.Unsigned.PrevContent; pc != nil {
		if pl, ok := pc.Parsed.(*mevent.PowerLevelsEventContent); ok {
			return pl, nil
		}
		return decodePowerLevels(pc.VeryRaw), nil
	}
	return nil, nil
}

func decodePowerLevels(raw []byte) *mevent.PowerLevelsEventContent {
	var pl mevent.PowerLevelsEventContent
	if len(raw) == 0 || json.Unmarshal(raw, &pl) != nil || len(pl.Users) > MaxPowerUsers {
		return nil
	}
	return &pl
}

// putPowerLevels records pl as room's current power levels (q: the store or a transaction).
func putPowerLevels(ctx context.Context, q store.Querier, room id.RoomID, pl *mevent.PowerLevelsEventContent) error {
	raw, err := json.Marshal(pl)
	if err != nil {
		return fmt.Errorf("matrix: encode power levels: %w", err)
	}
	if _, err := q.ExecContext(ctx, `INSERT INTO matrix_power_levels (mx_room, content) VALUES (?, ?)
		ON CONFLICT (mx_room) DO UPDATE SET content = excluded.content`, string(room), string(raw)); err != nil {
		return fmt.Errorf("matrix: record power levels of %s: %w", room, err)
	}
	return nil
}

// ingestPowerLevels turns the role changes of an m.room.power_levels event in a portal into
// MembershipRole envelopes, one per user whose role changed, and records the new levels.
func (a *Adapter) ingestPowerLevels(ctx context.Context, p *Parsed) error {
	r, ok, err := a.portalByMatrix(ctx, p.Room)
	if err != nil {
		return transient(err)
	}
	if !ok {
		a.metrics.inbound.WithLabelValues("no_portal").Inc()
		return nil
	}
	now := p.Event.Content.AsPowerLevels()
	prev, err := a.prevPowerLevels(ctx, p.Event)
	if err != nil {
		return transient(err)
	}
	done := func() error {
		err := a.st.InTx(ctx, func(tx *store.Tx) error {
			if err := putPowerLevels(ctx, tx, p.Room, now); err != nil {
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
	for _, c := range roleChanges(prev, now) {
		if c.user == a.botUserID() {
			continue
		}
		target, err := a.userURI(c.user)
		if err != nil {
			a.log.Debug("power level of a user without a MIMI identity skipped", "room_id", string(p.Room), "user", string(c.user))
			continue
		}
		env := &event.Envelope{
			ID:   event.NewEventID(event.NetworkMatrix, event.NativeRoomID(p.Room), event.NativeEventID(string(p.ID)+"|"+string(c.user))),
			Kind: event.KindMembership, Room: r, Sender: sender, Timestamp: p.Timestamp,
			Membership: &event.Membership{Action: event.MembershipRole, Target: target, Role: c.role},
			Origin:     event.Origin{Network: event.NetworkMatrix, Room: event.NativeRoomID(p.Room), Event: event.NativeEventID(p.ID), Sender: event.NativeUserID(p.Sender)},
		}
		if err := env.Validate(); err != nil {
			a.log.Debug("role change not relayed", "room_id", string(p.Room), "user", string(c.user), "error", err)
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
		return "", ignoreHTTP(err, "M_FORBIDDEN")
	case event.RoleBanned:
		_, err := actor.BanUser(ctx, o.room, &mautrix.ReqBanUser{UserID: target, Reason: m.Reason})
		return "", ignoreHTTP(err, "M_FORBIDDEN")
	}
	pl := &mevent.PowerLevelsEventContent{}
	if err := actor.StateEvent(ctx, o.room, mevent.StatePowerLevels, "", pl); err != nil {
		return "", fmt.Errorf("matrix: power levels of %s: %w", o.room, err)
	}
	level, ok := levelOfRole(pl, role)
	if !ok {
		a.log.Debug("role without a power level skipped", "room_id", string(o.room), "role", m.Role)
		return "", nil
	}
	if roleOfLevel(pl, pl.GetUserLevel(target)) == role {
		return "", nil
	}
	self := actor.UserID
	can := pl.GetUserLevel(self) >= pl.GetEventLevel(mevent.StatePowerLevels) && pl.EnsureUserLevelAs(self, target, level)
	if !can {
		if a.cfg.Mode == ModeAppservice {
			a.log.Info("role change not shown: the bot lacks the power", "room_id", string(o.room), "user", string(target), "role", m.Role)
			return "", nil
		}
		text := bridges.Say(a.lang(), bridges.PhraseRoleChanged, target, a.roleName(role))
		return o.send(ctx, mevent.EventMessage, &mevent.MessageEventContent{MsgType: mevent.MsgNotice, Body: text})
	}
	resp, err := actor.SendStateEvent(ctx, o.room, mevent.StatePowerLevels, "", pl)
	if err != nil {
		return "", fmt.Errorf("matrix: power levels of %s: %w", o.room, err)
	}
	// Our event comes back marked processed (render): record the levels it set here.
	if err := putPowerLevels(ctx, a.st, o.room, pl); err != nil {
		return "", err
	}
	return resp.EventID, nil
}

// roleName names a room role for people.
func (a *Adapter) roleName(r event.Role) string {
	switch r {
	case event.RoleOwner:
		return bridges.Say(a.lang(), bridges.PhraseRoleOwner)
	case event.RoleAdmin:
		return bridges.Say(a.lang(), bridges.PhraseRoleAdmin)
	case event.RoleRegular:
		return bridges.Say(a.lang(), bridges.PhraseRoleRegular)
	}
	return fmt.Sprintf("role %d", r)
}
