package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// The outgoing message map (provider_msgmap: an envelope's ciphertext and how far it got, out.go),
// the local fanout inbox's backlog, and the protocol outbox's queue that notices read.

// sentMessage returns the stored ciphertext of envelope id and its submit state; ok is false
// when the envelope was not encrypted yet.
func (d db) sentMessage(ctx context.Context, id event.EventID) (stored []byte, state submitState, ok bool, err error) {
	err = d.q.QueryRowContext(ctx, `SELECT message, submitted FROM provider_msgmap WHERE event_id = ?`, string(id)).Scan(&stored, &state)
	if isNoRows(err) {
		return nil, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, fmt.Errorf("provider: message map: %w", err)
	}
	return stored, state, true, nil
}

// insertSentMessage records envelope id's ciphertext (and MIMI message ID) in state.
func (d db) insertSentMessage(ctx context.Context, id event.EventID, room event.RoomURI, messageID, stored []byte, state submitState, now time.Time) error {
	_, err := d.q.ExecContext(ctx, `INSERT INTO provider_msgmap (event_id, room, message_id, message, submitted, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		string(id), string(room), messageID, stored, state, now.UnixMilli())
	return err
}

// setSubmitted records how far envelope id's message got.
func (d db) setSubmitted(ctx context.Context, id event.EventID, state submitState) error {
	_, err := d.q.ExecContext(ctx, `UPDATE provider_msgmap SET submitted = ? WHERE event_id = ?`, state, string(id))
	return err
}

// dropPendingMessage forgets envelope id's ciphertext unless a hub has accepted or refused it.
func (d db) dropPendingMessage(ctx context.Context, id event.EventID) error {
	_, err := d.q.ExecContext(ctx, `DELETE FROM provider_msgmap WHERE event_id = ? AND submitted = ?`, string(id), submitPending)
	return err
}

// inboxBacklog counts room's fanout messages waiting in the local inbox.
func (d db) inboxBacklog(ctx context.Context, room event.RoomURI) (int, error) {
	var n int
	err := d.q.QueryRowContext(ctx, `SELECT COUNT(*) FROM provider_inbox WHERE room = ?`, string(room)).Scan(&n)
	return n, err
}

// queuedRooms lists the rooms with /notify bodies queued in the protocol outbox for follower f.
func (d db) queuedRooms(ctx context.Context, f event.Domain) ([]event.RoomURI, error) {
	rows, err := d.q.QueryContext(ctx, `SELECT DISTINCT room FROM protocol_outbox WHERE follower = ? ORDER BY room`, string(f))
	if err != nil {
		return nil, fmt.Errorf("provider: rooms queued for %s: %w", f, err)
	}
	defer rows.Close()
	var out []event.RoomURI
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return nil, err
		}
		out = append(out, event.RoomURI(r))
	}
	return out, rows.Err()
}
