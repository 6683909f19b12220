// Package occupants keeps who is in the gateway's MUCs: the MIMI members (xmpp_members, with
// their roles in xmpp_roles) and the local XMPP users joined to them (the xmpp_occupants
// table of the adapter) and recovers them across an outage of their session: an occupant whose
// session is gone is not sent to, pinged until it is back, and then rejoined by the gateway or,
// after Window, removed (Tracker).
package occupants

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// Occupant is a local XMPP user's resource joined to a MUC.
type Occupant struct {
	Full, Bare, Nick string
}

// Key names an occupant: a resource (full JID) in a room.
type Key struct {
	Room event.RoomURI
	Full string
}

// Table is the adapter's xmpp_occupants table.
type Table struct {
	S   *store.Store
	Now func() time.Time
}

// List returns the occupants of a room, in the order they joined.
func (t Table) List(ctx context.Context, uri event.RoomURI) ([]Occupant, error) {
	rows, err := t.S.QueryContext(ctx, `SELECT full_jid, bare_jid, nick FROM xmpp_occupants WHERE room_uri = ? ORDER BY joined_at, full_jid`, string(uri))
	if err != nil {
		return nil, fmt.Errorf("xmpp: list occupants: %w", err)
	}
	defer rows.Close()
	var out []Occupant
	for rows.Next() {
		var o Occupant
		if err := rows.Scan(&o.Full, &o.Bare, &o.Nick); err != nil {
			return nil, fmt.Errorf("xmpp: list occupants: %w", err)
		}
		out = append(out, o)
	}
	return out, rows.Err()
}

// Add records that o joined the room now (again: its nick and join time are updated).
func (t Table) Add(ctx context.Context, uri event.RoomURI, o Occupant) error {
	_, err := t.S.ExecContext(ctx, `INSERT INTO xmpp_occupants (room_uri, full_jid, bare_jid, nick, joined_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (room_uri, full_jid) DO UPDATE SET nick = excluded.nick, joined_at = excluded.joined_at`, string(uri), o.Full, o.Bare, o.Nick, t.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("xmpp: add occupant: %w", err)
	}
	return nil
}

// Remove records that the occupant full left the room.
func (t Table) Remove(ctx context.Context, uri event.RoomURI, full string) error {
	if _, err := t.S.ExecContext(ctx, `DELETE FROM xmpp_occupants WHERE room_uri = ? AND full_jid = ?`, string(uri), full); err != nil {
		return fmt.Errorf("xmpp: remove occupant: %w", err)
	}
	return nil
}

// JoinedAt returns when the occupant full of room uri joined (last), and whether it is one.
func (t Table) JoinedAt(ctx context.Context, uri event.RoomURI, full string) (time.Time, bool, error) {
	var ms int64
	err := t.S.QueryRowContext(ctx, `SELECT joined_at FROM xmpp_occupants WHERE room_uri = ? AND full_jid = ?`, string(uri), full).Scan(&ms)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("xmpp: read occupant: %w", err)
	}
	return time.UnixMilli(ms), true, nil
}

// All lists the occupants of every room.
func (t Table) All(ctx context.Context) ([]Key, error) {
	rows, err := t.S.QueryContext(ctx, `SELECT room_uri, full_jid FROM xmpp_occupants ORDER BY room_uri, joined_at`)
	if err != nil {
		return nil, fmt.Errorf("xmpp: list occupants: %w", err)
	}
	defer rows.Close()
	var out []Key
	for rows.Next() {
		var room, full string
		if err := rows.Scan(&room, &full); err != nil {
			return nil, fmt.Errorf("xmpp: list occupants: %w", err)
		}
		out = append(out, Key{event.RoomURI(room), full})
	}
	return out, rows.Err()
}
