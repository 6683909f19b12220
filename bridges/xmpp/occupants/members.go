package occupants

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// Member is a MIMI user in a room, shown as a MUC occupant under Nick.
type Member struct {
	User event.UserURI
	Nick string
}

// ErrNoMember is returned when a user is not a member of a room.
var ErrNoMember = errors.New("xmpp: not a member of the room")

func (t Table) Members(ctx context.Context, uri event.RoomURI) ([]Member, error) {
	rows, err := t.S.QueryContext(ctx, `SELECT user_uri, nick FROM xmpp_members WHERE room_uri = ? ORDER BY nick`, string(uri))
	if err != nil {
		return nil, fmt.Errorf("xmpp: list members: %w", err)
	}
	defer rows.Close()
	var out []Member
	for rows.Next() {
		var m Member
		var u string
		if err := rows.Scan(&u, &m.Nick); err != nil {
			return nil, fmt.Errorf("xmpp: list members: %w", err)
		}
		m.User = event.UserURI(u)
		out = append(out, m)
	}
	return out, rows.Err()
}

func (t Table) MemberNick(ctx context.Context, uri event.RoomURI, user event.UserURI) (string, error) {
	var nick string
	err := t.S.QueryRowContext(ctx, `SELECT nick FROM xmpp_members WHERE room_uri = ? AND user_uri = ?`, string(uri), string(user)).Scan(&nick)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNoMember
	}
	if err != nil {
		return "", fmt.Errorf("xmpp: member nick: %w", err)
	}
	return nick, nil
}

// AddMember records a MIMI member; added is false when it was already a member.
func (t Table) AddMember(ctx context.Context, uri event.RoomURI, m Member) (bool, error) {
	res, err := t.S.ExecContext(ctx, `INSERT INTO xmpp_members (room_uri, user_uri, nick, joined_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		string(uri), string(m.User), m.Nick, t.Now().UnixMilli())
	if err != nil {
		return false, fmt.Errorf("xmpp: add member: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("xmpp: add member: %w", err)
	}
	return n == 1, nil
}

func (t Table) RemoveMember(ctx context.Context, uri event.RoomURI, user event.UserURI) (bool, error) {
	res, err := t.S.ExecContext(ctx, `DELETE FROM xmpp_members WHERE room_uri = ? AND user_uri = ?`, string(uri), string(user))
	if err != nil {
		return false, fmt.Errorf("xmpp: remove member: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("xmpp: remove member: %w", err)
	}
	return n == 1, nil
}

// Role returns user's stored role in the room (regular when none is stored).
func (t Table) Role(ctx context.Context, uri event.RoomURI, user event.UserURI) (event.Role, error) {
	var r int64
	err := t.S.QueryRowContext(ctx, `SELECT role FROM xmpp_roles WHERE room_uri = ? AND user_uri = ?`, string(uri), string(user)).Scan(&r)
	if errors.Is(err, sql.ErrNoRows) {
		return event.RoleRegular, nil
	}
	if err != nil {
		return 0, fmt.Errorf("xmpp: role: %w", err)
	}
	return event.Role(r), nil
}

// SetRole stores user's role (role 0 or regular: the row goes).
func (t Table) SetRole(ctx context.Context, uri event.RoomURI, user event.UserURI, r event.Role) error {
	var err error
	if r == event.RoleNone || r == event.RoleRegular {
		_, err = t.S.ExecContext(ctx, `DELETE FROM xmpp_roles WHERE room_uri = ? AND user_uri = ?`, string(uri), string(user))
	} else {
		_, err = t.S.ExecContext(ctx, `INSERT INTO xmpp_roles (room_uri, user_uri, role) VALUES (?, ?, ?)
			ON CONFLICT (room_uri, user_uri) DO UPDATE SET role = excluded.role`, string(uri), string(user), int64(r))
	}
	if err != nil {
		return fmt.Errorf("xmpp: store role: %w", err)
	}
	return nil
}
