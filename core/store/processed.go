package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Scope namespaces idempotency records and key-value entries, e.g.
// "matrix.txn", "bus.endpoint", "xmpp.stanza". Scopes are fixed strings
// chosen by components, never user or room IDs.
type Scope string

// Input limits. Longer values are refused with ErrInvalidArgument.
const (
	// MaxScopeLen is the longest Scope, in bytes.
	MaxScopeLen = 128
	// MaxEventIDLen is the longest event ID for MarkProcessed, in bytes.
	MaxEventIDLen = 1024
	// MaxKeyLen is the longest KV key, in bytes.
	MaxKeyLen = 1024
	// MaxValueLen is the largest KV value, in bytes (1 MiB).
	MaxValueLen = 1 << 20
)

// processedPruneBatch bounds how many rows one DELETE of PruneProcessed
// removes, so the SQLite writer is never held for long.
const processedPruneBatch = 1000

// checkText validates a scope, key or ID: non-empty, at most maxLen bytes,
// valid UTF-8 without NUL (PostgreSQL TEXT cannot hold either, and both
// backends must behave the same).
func checkText(what, v string, maxLen int) error {
	switch {
	case v == "":
		return fmt.Errorf("%w: empty %s", ErrInvalidArgument, what)
	case len(v) > maxLen:
		return fmt.Errorf("%w: %s is %d bytes, limit %d", ErrInvalidArgument, what, len(v), maxLen)
	case !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0:
		return fmt.Errorf("%w: %s is not valid UTF-8 text without NUL", ErrInvalidArgument, what)
	}
	return nil
}

// execer is the subset of database/sql shared by *sql.DB and *sql.Tx.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func (s *Store) markProcessed(ctx context.Context, q execer, scope Scope, eventID string) (bool, error) {
	if err := checkText("scope", string(scope), MaxScopeLen); err != nil {
		return false, err
	}
	if err := checkText("event ID", eventID, MaxEventIDLen); err != nil {
		return false, err
	}
	res, err := q.ExecContext(ctx, s.Rebind(
		`INSERT INTO store_processed_events (scope, event_id, processed_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`),
		string(scope), eventID, s.nowMillis())
	if err != nil {
		s.metrics.observeErr(err)
		return false, fmt.Errorf("store: mark processed (%s): %w", scope, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: mark processed (%s): rows affected: %w", scope, err)
	}
	s.metrics.observeProcessed(n == 1)
	return n == 1, nil
}

func (s *Store) isProcessed(ctx context.Context, q execer, scope Scope, eventID string) (bool, error) {
	if err := checkText("scope", string(scope), MaxScopeLen); err != nil {
		return false, err
	}
	if err := checkText("event ID", eventID, MaxEventIDLen); err != nil {
		return false, err
	}
	var one int
	err := q.QueryRowContext(ctx, s.Rebind(
		`SELECT 1 FROM store_processed_events WHERE scope = ? AND event_id = ?`), string(scope), eventID).Scan(&one)
	switch {
	case err == sql.ErrNoRows:
		return false, nil
	case err != nil:
		return false, fmt.Errorf("store: is processed (%s): %w", scope, err)
	}
	return true, nil
}

// MarkProcessed records that eventID was processed in scope, as part of the
// transaction. It returns first=true when this is the first record, and
// false when the event was already recorded (a redelivery: skip the work,
// return nil to commit nothing new, and ack). Because the record commits or
// rolls back together with the caller's own writes in tx, "apply + mark" is
// atomic. On PostgreSQL a concurrent transaction marking the same event waits
// until this one ends, then sees first=false if this one committed.
func (t *Tx) MarkProcessed(ctx context.Context, scope Scope, eventID string) (first bool, err error) {
	return t.s.markProcessed(ctx, t.tx, scope, eventID)
}

// IsProcessed reports whether eventID was recorded in scope, as seen by the
// transaction.
func (t *Tx) IsProcessed(ctx context.Context, scope Scope, eventID string) (bool, error) {
	return t.s.isProcessed(ctx, t.tx, scope, eventID)
}

// MarkProcessed records eventID in scope in its own (autocommit) statement.
// Prefer (*Tx).MarkProcessed together with the work it guards.
func (s *Store) MarkProcessed(ctx context.Context, scope Scope, eventID string) (first bool, err error) {
	if s.closed.Load() {
		return false, ErrClosed
	}
	err = s.autocommit(ctx, func(q execer) error {
		var err error
		first, err = s.markProcessed(ctx, q, scope, eventID)
		return err
	})
	return first, err
}

// IsProcessed reports whether eventID was recorded in scope.
func (s *Store) IsProcessed(ctx context.Context, scope Scope, eventID string) (bool, error) {
	if s.closed.Load() {
		return false, ErrClosed
	}
	return s.isProcessed(ctx, s.reader, scope, eventID)
}

// PruneProcessed deletes idempotency records of every scope processed before
// the given time, in small batches, and returns how many it deleted. Keep
// records for longer than any redelivery can arrive (bus retention, the
// homeserver's transaction retry window).
func (s *Store) PruneProcessed(ctx context.Context, before time.Time) (int64, error) {
	return s.pruneProcessed(ctx, `SELECT scope, event_id FROM store_processed_events WHERE processed_at < ? LIMIT ?`,
		before.UnixMilli(), processedPruneBatch)
}

// PruneProcessedScope is PruneProcessed for one scope: a component prunes its own records with
// its own retention and leaves the other components' alone.
func (s *Store) PruneProcessedScope(ctx context.Context, scope Scope, before time.Time) (int64, error) {
	if err := checkText("scope", string(scope), MaxScopeLen); err != nil {
		return 0, err
	}
	return s.pruneProcessed(ctx, `SELECT scope, event_id FROM store_processed_events WHERE scope = ? AND processed_at < ? LIMIT ?`,
		string(scope), before.UnixMilli(), processedPruneBatch)
}

// pruneProcessed deletes the rows sel selects, a batch at a time, until a batch is short.
func (s *Store) pruneProcessed(ctx context.Context, sel string, args ...any) (int64, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	q := s.Rebind(`DELETE FROM store_processed_events WHERE (scope, event_id) IN (` + sel + `)`)
	var total int64
	for {
		res, err := s.autocommitResult(ctx, func(w execer) (sql.Result, error) { return w.ExecContext(ctx, q, args...) })
		if err != nil {
			return total, fmt.Errorf("store: prune processed events: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("store: prune processed events: rows affected: %w", err)
		}
		total += n
		if n < processedPruneBatch {
			return total, nil
		}
	}
}
