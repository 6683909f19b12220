package provider

import (
	"context"
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// The local fanout inbox (inbox.go: provider_inbox) and the clients it is applied to.

// insertInbox appends a fanout message of room (encoded, with its ratchet tree if any).
func (d db) insertInbox(ctx context.Context, room event.RoomURI, sender event.UserURI, accepted uint64, msg, tree []byte) error {
	_, err := d.q.ExecContext(ctx, `INSERT INTO provider_inbox (room, sender, accepted, message, tree) VALUES (?, ?, ?, ?, ?)`,
		string(room), string(sender), int64(accepted), msg, tree)
	if err != nil {
		return fmt.Errorf("provider: insert inbox: %w", err)
	}
	return nil
}

// inboxRecord is a stored inbox row, still encoded.
type inboxRecord struct {
	id        int64
	room      string
	sender    string
	accepted  int64
	msg, tree []byte
}

// inboxHead reads the oldest n inbox rows in order.
func (d db) inboxHead(ctx context.Context, n int) ([]inboxRecord, error) {
	rows, err := d.q.QueryContext(ctx, `SELECT id, room, sender, accepted, message, tree FROM provider_inbox ORDER BY id LIMIT ?`, n)
	if err != nil {
		return nil, fmt.Errorf("provider: read inbox: %w", err)
	}
	defer rows.Close()
	var out []inboxRecord
	for rows.Next() {
		var r inboxRecord
		if err := rows.Scan(&r.id, &r.room, &r.sender, &r.accepted, &r.msg, &r.tree); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// deleteInboxRows deletes the inbox rows ids.
func (d db) deleteInboxRows(ctx context.Context, ids ...int64) error {
	for _, id := range ids {
		if _, err := d.q.ExecContext(ctx, `DELETE FROM provider_inbox WHERE id = ?`, id); err != nil {
			return fmt.Errorf("provider: delete inbox row: %w", err)
		}
	}
	return nil
}

// clientsInEpoch returns the first two users (the designated reader and the next) with a local
// client in room at epoch, in URI order, without loading their states.
func (d db) clientsInEpoch(ctx context.Context, room event.RoomURI, epoch uint64) ([]event.UserURI, error) {
	return d.userColumn(ctx, `SELECT user_uri FROM provider_clients WHERE room = ? AND epoch = ? ORDER BY user_uri LIMIT 2`, string(room), int64(epoch))
}

// usersWithClients returns up to n users with a local client in room, in URI order.
func (d db) usersWithClients(ctx context.Context, room event.RoomURI, n int) ([]event.UserURI, error) {
	return d.userColumn(ctx, `SELECT user_uri FROM provider_clients WHERE room = ? ORDER BY user_uri LIMIT ?`, string(room), n)
}

// userColumn runs a query for one column of user URIs.
func (d db) userColumn(ctx context.Context, query string, args ...any) ([]event.UserURI, error) {
	rows, err := d.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("provider: local clients: %w", err)
	}
	defer rows.Close()
	var out []event.UserURI
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, fmt.Errorf("provider: scan client: %w", err)
		}
		out = append(out, event.UserURI(u))
	}
	return out, rows.Err()
}
