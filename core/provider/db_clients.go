package provider

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// Local users' MLS clients (clients.go): provider_clients (secret tree, the compare-and-set
// version), provider_client_epochs (member states), provider_room_epochs (public states).

// clientColumns selects what clientRow.decode reads.
const clientColumns = `c.user_uri, c.version, c.split, c.state, e.state, e.shared, e.epoch FROM provider_clients c
	LEFT JOIN provider_client_epochs e ON e.room = c.room AND e.user_uri = c.user_uri`

// clientRow is a row of clientColumns.
type clientRow struct {
	user          string
	version       int64
	split         int64
	state, member []byte
	shared, epoch sql.NullInt64
}

func (r *clientRow) scan(s interface{ Scan(...any) error }) error {
	return s.Scan(&r.user, &r.version, &r.split, &r.state, &r.member, &r.shared, &r.epoch)
}

// publicStateBytes reads the stored public state of room's epoch.
func (d db) publicStateBytes(ctx context.Context, room event.RoomURI, epoch uint64) ([]byte, error) {
	var b []byte
	err := d.q.QueryRowContext(ctx, `SELECT state FROM provider_room_epochs WHERE room = ? AND epoch = ?`, string(room), int64(epoch)).Scan(&b)
	return b, err
}

// clientRows reads the clients of room, ordered by user.
func (d db) clientRows(ctx context.Context, room event.RoomURI) ([]clientRow, error) {
	rows, err := d.q.QueryContext(ctx, `SELECT `+clientColumns+` WHERE c.room = ? ORDER BY c.user_uri`, string(room))
	if err != nil {
		return nil, fmt.Errorf("provider: load clients: %w", err)
	}
	defer rows.Close()
	var list []clientRow
	for rows.Next() {
		var r clientRow
		if err := r.scan(rows); err != nil {
			return nil, fmt.Errorf("provider: scan client: %w", err)
		}
		list = append(list, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("provider: load clients: %w", err)
	}
	return list, nil
}

// clientRow reads u's client in room; ok is false when u has none.
func (d db) clientRow(ctx context.Context, room event.RoomURI, u event.UserURI) (r clientRow, ok bool, err error) {
	err = r.scan(d.q.QueryRowContext(ctx, `SELECT `+clientColumns+` WHERE c.room = ? AND c.user_uri = ?`, string(room), string(u)))
	if errors.Is(err, sql.ErrNoRows) {
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("provider: load client: %w", err)
	}
	return r, true, nil
}

// hasClient reports whether u has a client in room.
func (d db) hasClient(ctx context.Context, room event.RoomURI, u event.UserURI) (bool, error) {
	var n int
	if err := d.q.QueryRowContext(ctx, `SELECT COUNT(*) FROM provider_clients WHERE room = ? AND user_uri = ?`, string(room), string(u)).Scan(&n); err != nil {
		return false, fmt.Errorf("provider: client of %s: %w", u, err)
	}
	return n > 0, nil
}

// casClientState writes u's sealed secret tree and epoch in room and moves the row's version, if
// the row is still at version and its epoch not beyond epoch (the compare-and-set: the epoch
// never goes back). It reports whether the row was written.
func (d db) casClientState(ctx context.Context, room event.RoomURI, u event.UserURI, version int64, epoch uint64, sealed []byte) (bool, error) {
	res, err := d.q.ExecContext(ctx, `UPDATE provider_clients SET epoch = ?, version = version + 1, state = ?, split = 1
		WHERE room = ? AND user_uri = ? AND version = ? AND epoch <= ?`,
		int64(epoch), sealed, string(room), string(u), version, int64(epoch))
	if err != nil {
		return false, fmt.Errorf("provider: save MLS state: %w", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// putMemberStateRow writes u's sealed member state of epoch in room.
func (d db) putMemberStateRow(ctx context.Context, room event.RoomURI, u event.UserURI, epoch uint64, sealed []byte) error {
	_, err := d.q.ExecContext(ctx, `INSERT INTO provider_client_epochs (room, user_uri, epoch, state, shared) VALUES (?, ?, ?, ?, 1)
		ON CONFLICT (room, user_uri) DO UPDATE SET epoch = excluded.epoch, state = excluded.state, shared = 1`,
		string(room), string(u), int64(epoch), sealed)
	if err != nil {
		return fmt.Errorf("provider: save MLS member state: %w", err)
	}
	return nil
}

// hasPublicState reports whether the public state of room's epoch is stored.
func (d db) hasPublicState(ctx context.Context, room event.RoomURI, epoch uint64) (bool, error) {
	var n int
	if err := d.q.QueryRowContext(ctx, `SELECT COUNT(*) FROM provider_room_epochs WHERE room = ? AND epoch = ?`, string(room), int64(epoch)).Scan(&n); err != nil {
		return false, fmt.Errorf("provider: public state: %w", err)
	}
	return n > 0, nil
}

// insertPublicState stores the public state of room's epoch.
func (d db) insertPublicState(ctx context.Context, room event.RoomURI, epoch uint64, state []byte) error {
	if _, err := d.q.ExecContext(ctx, `INSERT INTO provider_room_epochs (room, epoch, state) VALUES (?, ?, ?)`, string(room), int64(epoch), state); err != nil {
		return fmt.Errorf("provider: save MLS public state: %w", err)
	}
	return nil
}

// prunePublicStates deletes room's public states that no client refers to, except keep's.
func (d db) prunePublicStates(ctx context.Context, room event.RoomURI, keep uint64) error {
	_, err := d.q.ExecContext(ctx, `DELETE FROM provider_room_epochs WHERE room = ? AND epoch <> ?
		AND epoch NOT IN (SELECT epoch FROM provider_client_epochs WHERE room = ? AND shared = 1)`, string(room), int64(keep), string(room))
	if err != nil {
		return fmt.Errorf("provider: prune public states: %w", err)
	}
	return nil
}

// insertClientRow stores u's new client in room at epoch with its sealed secret tree (version 1).
func (d db) insertClientRow(ctx context.Context, room event.RoomURI, u event.UserURI, epoch uint64, sealed []byte) error {
	_, err := d.q.ExecContext(ctx, `INSERT INTO provider_clients (room, user_uri, epoch, version, state, split) VALUES (?, ?, ?, 1, ?, 1)`,
		string(room), string(u), int64(epoch), sealed)
	if err != nil {
		return fmt.Errorf("provider: insert client: %w", err)
	}
	return nil
}

// deleteClientRows deletes u's client in room (member state and secret tree).
func (d db) deleteClientRows(ctx context.Context, room event.RoomURI, u event.UserURI) error {
	if _, err := d.q.ExecContext(ctx, `DELETE FROM provider_client_epochs WHERE room = ? AND user_uri = ?`, string(room), string(u)); err != nil {
		return fmt.Errorf("provider: delete client: %w", err)
	}
	if _, err := d.q.ExecContext(ctx, `DELETE FROM provider_clients WHERE room = ? AND user_uri = ?`, string(room), string(u)); err != nil {
		return fmt.Errorf("provider: delete client: %w", err)
	}
	return nil
}

// clientVersion reads the compare-and-set version of u's client in room; ok is false when u has
// none.
func (d db) clientVersion(ctx context.Context, room event.RoomURI, u event.UserURI) (v int64, ok bool, err error) {
	err = d.q.QueryRowContext(ctx, `SELECT version FROM provider_clients WHERE room = ? AND user_uri = ?`, string(room), string(u)).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("provider: client version: %w", err)
	}
	return v, true, nil
}

// clientRoom is a room a user has a client in, and the client's epoch.
type clientRoom struct {
	room  event.RoomURI
	epoch int64
}

// memberships lists the rooms u has a client in.
func (d db) memberships(ctx context.Context, u event.UserURI) ([]clientRoom, error) {
	rows, err := d.q.QueryContext(ctx, `SELECT room, epoch FROM provider_clients WHERE user_uri = ?`, string(u))
	if err != nil {
		return nil, fmt.Errorf("provider: rooms of %s: %w", u, err)
	}
	defer rows.Close()
	var in []clientRoom
	for rows.Next() {
		var m clientRoom
		var r string
		if err := rows.Scan(&r, &m.epoch); err != nil {
			return nil, err
		}
		m.room = event.RoomURI(r)
		in = append(in, m)
	}
	return in, rows.Err()
}

// firstClient returns the local user with a client in room that comes first by URI; ok is false
// when no local user has one.
func (d db) firstClient(ctx context.Context, room event.RoomURI) (u event.UserURI, ok bool, err error) {
	var s string
	err = d.q.QueryRowContext(ctx, `SELECT user_uri FROM provider_clients WHERE room = ? ORDER BY user_uri LIMIT 1`, string(room)).Scan(&s)
	if isNoRows(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("provider: local member of %s: %w", room, err)
	}
	return event.UserURI(s), true, nil
}

// clientPerNetwork returns, per network serving local users with a client in room, the first of
// those users by URI.
func (d db) clientPerNetwork(ctx context.Context, room event.RoomURI) (map[event.Network]event.UserURI, []event.Network, error) {
	rows, err := d.q.QueryContext(ctx, `SELECT u.network, MIN(c.user_uri) FROM provider_clients c JOIN provider_users u ON u.user_uri = c.user_uri
		WHERE c.room = ? GROUP BY u.network ORDER BY u.network`, string(room))
	if err != nil {
		return nil, nil, fmt.Errorf("provider: local users of %s: %w", room, err)
	}
	defer rows.Close()
	users := map[event.Network]event.UserURI{}
	var order []event.Network
	for rows.Next() {
		var n, u string
		if err := rows.Scan(&n, &u); err != nil {
			return nil, nil, err
		}
		users[event.Network(n)] = event.UserURI(u)
		order = append(order, event.Network(n))
	}
	return users, order, rows.Err()
}
