package provider

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/room"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// The room policy itself is core/room's (roles, capabilities, authorization); this file keeps
// the provider's errors and its reads of the participant index (roomstate.go).

// errNotAllowed is a policy refusal (notAllowed on the wire).
var errNotAllowed = errors.New("provider: not allowed by the room policy")

// errWrongEpoch is a handshake or message for another epoch than the room's.
type errWrongEpoch struct{ Current uint64 }

func (e *errWrongEpoch) Error() string {
	return fmt.Sprintf("provider: wrong epoch (room is at %d)", e.Current)
}

// roleOf reads u's role in room from the participant index (the hub's accepted state).
func roleOf(ctx context.Context, q store.Querier, r event.RoomURI, u event.UserURI) (room.RoleIndex, bool, error) {
	var v int64
	err := q.QueryRowContext(ctx, `SELECT role FROM provider_participants WHERE room = ? AND user_uri = ?`, string(r), string(u)).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return room.RoleNone, false, nil
	}
	if err != nil {
		return room.RoleNone, false, fmt.Errorf("provider: role: %w", err)
	}
	return room.RoleIndex(v), true, nil
}

// followers returns the partner domains with active (not banned) participants in room.
func (p *Provider) followers(ctx context.Context, q store.Querier, r event.RoomURI) ([]event.Domain, error) {
	rows, err := q.QueryContext(ctx, `SELECT user_uri FROM provider_participants WHERE room = ? AND role <> ?`, string(r), int64(room.RoleBanned))
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
