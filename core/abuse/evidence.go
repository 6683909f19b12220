package abuse

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// A report names messages its reporter received, with the hub's frank of each. The MIMI
// provider keeps, for the messages local users receive, what a report needs: the frank that came
// with the fanout (PutFrank, by the MLSMessage's hash, until the message is read) and then the
// decrypted content with its frank (PutEvidence, by MIMI message ID). Evidence is sealed and
// pruned after EvidenceRetention (PruneEvidence).

// EvidenceRetention is how long the content and frank of a received message are kept for a
// report.
const EvidenceRetention = 7 * 24 * time.Hour

var sealedEvidence = store.SealedColumn{Table: "abuse_evidence", Column: "content", Key: []string{"room", "message_id"}}

// querier is a store or a transaction.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// PutFrank keeps the frank (encoded) and accepted timestamp of the fanned-out message with hash
// msgHash in room (idempotent).
func PutFrank(ctx context.Context, tx *store.Tx, room event.RoomURI, msgHash []byte, frank []byte, accepted uint64, now time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO abuse_franks (room, msg_hash, frank, accepted_at, created_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (room, msg_hash) DO NOTHING`, string(room), hex.EncodeToString(msgHash), frank, int64(accepted), now.UnixMilli())
	if err != nil {
		return fmt.Errorf("abuse: keep a frank: %w", err)
	}
	return nil
}

// FrankOf returns the frank kept for the message with hash msgHash in room; ok is false when
// there is none.
func FrankOf(ctx context.Context, q querier, room event.RoomURI, msgHash []byte) (frank []byte, accepted uint64, ok bool, err error) {
	var at int64
	err = q.QueryRowContext(ctx, `SELECT frank, accepted_at FROM abuse_franks WHERE room = ? AND msg_hash = ?`, string(room), hex.EncodeToString(msgHash)).Scan(&frank, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, false, nil
	}
	if err != nil {
		return nil, 0, false, fmt.Errorf("abuse: frank: %w", err)
	}
	return frank, uint64(at), true, nil
}

// Evidence is a received message as a report names it.
type Evidence struct {
	Room      event.RoomURI
	MessageID []byte
	Sender    event.UserURI
	// Accepted is the hub's accepted timestamp (ms); Frank the encoded frank.
	Accepted uint64
	Frank    []byte
	// Content is the decrypted MIMI content.
	Content []byte
}

// PutEvidence keeps e (sealed) and forgets the frank kept by msgHash.
func PutEvidence(ctx context.Context, tx *store.Tx, e Evidence, msgHash []byte, now time.Time) error {
	id := hex.EncodeToString(e.MessageID)
	c, err := tx.Seal(sealedEvidence, e.Content, string(e.Room), id)
	if err != nil {
		return fmt.Errorf("abuse: seal evidence: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO abuse_evidence (room, message_id, sender, accepted_at, frank, content, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (room, message_id) DO NOTHING`, string(e.Room), id, string(e.Sender), int64(e.Accepted), e.Frank, c, now.UnixMilli()); err != nil {
		return fmt.Errorf("abuse: keep evidence: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM abuse_franks WHERE room = ? AND msg_hash = ?`, string(e.Room), hex.EncodeToString(msgHash)); err != nil {
		return fmt.Errorf("abuse: forget a frank: %w", err)
	}
	return nil
}

// ErrNoEvidence: no franked message with that ID was received in the room (or it is too old).
var ErrNoEvidence = errors.New("abuse: no franked message with that ID")

// EvidenceOf returns the kept evidence of message id in room.
func EvidenceOf(ctx context.Context, st *store.Store, room event.RoomURI, id []byte) (Evidence, error) {
	e := Evidence{Room: room, MessageID: id}
	var sender string
	var at int64
	var c []byte
	hx := hex.EncodeToString(id)
	err := st.QueryRowContext(ctx, `SELECT sender, accepted_at, frank, content FROM abuse_evidence WHERE room = ? AND message_id = ?`, string(room), hx).
		Scan(&sender, &at, &e.Frank, &c)
	if errors.Is(err, sql.ErrNoRows) {
		return e, ErrNoEvidence
	}
	if err != nil {
		return e, fmt.Errorf("abuse: evidence: %w", err)
	}
	if e.Content, err = st.Unseal(sealedEvidence, c, string(room), hx); err != nil {
		return e, fmt.Errorf("abuse: evidence: %w", err)
	}
	e.Sender, e.Accepted = event.UserURI(sender), uint64(at)
	return e, nil
}

// PruneEvidence deletes franks and evidence kept since before `before` and returns how many.
func PruneEvidence(ctx context.Context, st *store.Store, before time.Time) (int64, error) {
	n, err := st.DeleteWhere(ctx, "abuse_franks", []string{"room", "msg_hash"}, `created_at < ?`, before.UnixMilli())
	if err != nil {
		return n, fmt.Errorf("abuse: prune franks: %w", err)
	}
	m, err := st.DeleteWhere(ctx, "abuse_evidence", []string{"room", "message_id"}, `created_at < ?`, before.UnixMilli())
	if err != nil {
		return n + m, fmt.Errorf("abuse: prune evidence: %w", err)
	}
	return n + m, nil
}
