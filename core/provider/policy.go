package provider

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// Role is a room-policy-03 role index. The provider's base policy is the minimum of
// room-policy-03 §5.5: no_role, banned, regular, admin and owner.
type Role uint32

// Roles of the base policy.
const (
	RoleNone    Role = 0
	RoleBanned  Role = 1
	RoleRegular Role = 2
	RoleAdmin   Role = 3
	RoleOwner   Role = 4
)

// capability is a room-policy-03 capability the hub enforces.
type capability int

const (
	capAddParticipant capability = iota
	capRemoveParticipant
	capChangeUserRole
	capBan
	capSendMessage
)

// can reports whether role r holds capability c. Regular participants may add others and send
// (the "cooperatively administered" example of room-policy-03 Appendix A); admins and owners may
// also remove, change roles and ban; banned and no_role hold nothing.
func (r Role) can(c capability) bool {
	switch r {
	case RoleOwner, RoleAdmin:
		return true
	case RoleRegular:
		return c == capAddParticipant || c == capSendMessage
	}
	return false
}

// errNotAllowed is a policy refusal (notAllowed on the wire).
var errNotAllowed = errors.New("provider: not allowed by the room policy")

// errWrongEpoch is a handshake or message for another epoch than the room's.
type errWrongEpoch struct{ Current uint64 }

func (e *errWrongEpoch) Error() string {
	return fmt.Sprintf("provider: wrong epoch (room is at %d)", e.Current)
}

func roleOf(ctx context.Context, q store.Querier, room event.RoomURI, u event.UserURI) (Role, bool, error) {
	var r int64
	err := q.QueryRowContext(ctx, `SELECT role FROM provider_participants WHERE room = ? AND user_uri = ?`, string(room), string(u)).Scan(&r)
	if errors.Is(err, sql.ErrNoRows) {
		return RoleNone, false, nil
	}
	if err != nil {
		return RoleNone, false, fmt.Errorf("provider: role: %w", err)
	}
	return Role(r), true, nil
}

func setRole(ctx context.Context, tx *store.Tx, room event.RoomURI, u event.UserURI, r Role) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO provider_participants (room, user_uri, role) VALUES (?, ?, ?)
		ON CONFLICT (room, user_uri) DO UPDATE SET role = excluded.role`, string(room), string(u), int64(r))
	if err != nil {
		return fmt.Errorf("provider: set role: %w", err)
	}
	return nil
}

func removeParticipant(ctx context.Context, tx *store.Tx, room event.RoomURI, u event.UserURI) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM provider_participants WHERE room = ? AND user_uri = ?`, string(room), string(u))
	return err
}

// followers returns the partner domains with active (not banned) participants in room.
func (p *Provider) followers(ctx context.Context, q store.Querier, room event.RoomURI) ([]event.Domain, error) {
	rows, err := q.QueryContext(ctx, `SELECT user_uri FROM provider_participants WHERE room = ? AND role <> ?`, string(room), int64(RoleBanned))
	if err != nil {
		return nil, fmt.Errorf("provider: followers: %w", err)
	}
	defer rows.Close()
	seen := map[event.Domain]bool{}
	var out []event.Domain
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, err
		}
		d := event.UserURI(u).Domain()
		if d != p.cfg.Domain && !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out, rows.Err()
}
