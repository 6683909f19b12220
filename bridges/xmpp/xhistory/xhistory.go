// Package xhistory keeps the XMPP adapter's MUC room history: the reflected groupchat messages
// that a user who joins gets (XEP-0045 history) and that a reply quotes, sealed in the gateway's
// store with the room and stanza ID bound, bounded per room and pruned by age.
package xhistory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// ErrNotFound is returned when a message is not in the room's history.
var ErrNotFound = errors.New("xmpp: message not in history")

// Store is the history table of a store.
type Store struct{ s *store.Store }

// New returns the history of st (the adapter migrates its table).
func New(st *store.Store) *Store { return &Store{s: st} }

// Sealed is the message content kept for MUC history: sealed with the store's key, bound
// to room and stanza ID.
var Sealed = store.SealedColumn{Table: "xmpp_history", Column: "payload", Key: []string{"seq"}, Bind: []string{"room_uri", "stanza_id"}}

// Entry is one reflected groupchat message kept for history on join.
type Entry struct {
	StanzaID string
	Nick     string
	Payload  string
	SentAt   time.Time
}

// Add keeps h as the room uri's newest entry and drops all but the newest keep.
func (d *Store) Add(ctx context.Context, uri event.RoomURI, h Entry, keep int) error {
	if keep <= 0 {
		return nil
	}
	// One commit for the entry and the pruning, shared with concurrent writers.
	return d.s.InGroupTx(ctx, func(tx *store.Tx) error { return d.AddTx(ctx, tx, uri, h, keep) })
}

// AddTx is Add in the transaction tx.
func (d *Store) AddTx(ctx context.Context, tx *store.Tx, uri event.RoomURI, h Entry, keep int) error {
	if keep <= 0 {
		return nil
	}
	if err := d.InsertTx(ctx, tx, uri, h); err != nil {
		return err
	}
	return d.PruneTx(ctx, tx, uri, keep)
}

// InsertTx keeps h as the room uri's newest entry, in tx, without pruning: a batch of entries
// is pruned once with PruneTx.
func (d *Store) InsertTx(ctx context.Context, tx *store.Tx, uri event.RoomURI, h Entry) error {
	payload, err := d.s.Seal(Sealed, []byte(h.Payload), string(uri), h.StanzaID)
	if err != nil {
		return fmt.Errorf("xmpp: add history: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO xmpp_history (room_uri, stanza_id, nick, payload, sent_at) VALUES (?, ?, ?, ?, ?)`,
		string(uri), h.StanzaID, h.Nick, payload, h.SentAt.UnixMilli()); err != nil {
		return fmt.Errorf("xmpp: add history: %w", err)
	}
	return nil
}

// PruneTx drops all but the room uri's newest keep entries, in tx.
func (d *Store) PruneTx(ctx context.Context, tx *store.Tx, uri event.RoomURI, keep int) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM xmpp_history WHERE room_uri = ? AND seq <= (
		SELECT seq FROM xmpp_history WHERE room_uri = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)`, string(uri), string(uri), keep); err != nil {
		return fmt.Errorf("xmpp: prune history: %w", err)
	}
	return nil
}

// Delete drops the entry of stanzaID from the room uri's history.
func (d *Store) Delete(ctx context.Context, uri event.RoomURI, stanzaID string) error {
	if _, err := d.s.ExecContext(ctx, `DELETE FROM xmpp_history WHERE room_uri = ? AND stanza_id = ?`, string(uri), stanzaID); err != nil {
		return fmt.Errorf("xmpp: delete history: %w", err)
	}
	return nil
}

// Recent returns up to n most recent entries sent at or after since, oldest first.
func (d *Store) Recent(ctx context.Context, uri event.RoomURI, n int, since time.Time) ([]Entry, error) {
	if n <= 0 {
		return nil, nil
	}
	rows, err := d.s.QueryContext(ctx, `SELECT stanza_id, nick, payload, sent_at FROM xmpp_history
		WHERE room_uri = ? AND sent_at >= ? ORDER BY seq DESC LIMIT ?`, string(uri), since.UnixMilli(), n)
	if err != nil {
		return nil, fmt.Errorf("xmpp: read history: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var h Entry
		var at int64
		var sealed []byte
		if err := rows.Scan(&h.StanzaID, &h.Nick, &sealed, &at); err != nil {
			return nil, fmt.Errorf("xmpp: read history: %w", err)
		}
		if h.Payload, err = d.unseal(uri, h.StanzaID, sealed); err != nil {
			return nil, err
		}
		h.SentAt = time.UnixMilli(at)
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("xmpp: read history: %w", err)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// Payload returns the stored payload of a message, to quote it in a reply fallback.
func (d *Store) Payload(ctx context.Context, uri event.RoomURI, stanzaID string) (Entry, error) {
	var h Entry
	var at int64
	var sealed []byte
	err := d.s.QueryRowContext(ctx, `SELECT stanza_id, nick, payload, sent_at FROM xmpp_history WHERE room_uri = ? AND stanza_id = ? ORDER BY seq DESC LIMIT 1`,
		string(uri), stanzaID).Scan(&h.StanzaID, &h.Nick, &sealed, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return h, ErrNotFound
	}
	if err != nil {
		return h, fmt.Errorf("xmpp: read history entry: %w", err)
	}
	if h.Payload, err = d.unseal(uri, h.StanzaID, sealed); err != nil {
		return h, err
	}
	h.SentAt = time.UnixMilli(at)
	return h, nil
}

// unseal opens a stored history payload.
func (d *Store) unseal(uri event.RoomURI, stanzaID string, sealed []byte) (string, error) {
	pt, err := d.s.Unseal(Sealed, sealed, string(uri), stanzaID)
	if err != nil {
		return "", fmt.Errorf("xmpp: history payload: %w", err)
	}
	return string(pt), nil
}

// Prune deletes the room history entries sent before `before` (retention of MUC history)
// and returns how many it deleted.
func Prune(ctx context.Context, st *store.Store, before time.Time) (int64, error) {
	n, err := st.DeleteWhere(ctx, "xmpp_history", []string{"seq"}, `sent_at < ?`, before.UnixMilli())
	if err != nil {
		return n, fmt.Errorf("xmpp: prune history: %w", err)
	}
	return n, nil
}
