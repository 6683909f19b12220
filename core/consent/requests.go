package consent

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// State is where a request for consent stands.
type State string

// Request states.
const (
	// Pending: asked, not answered yet.
	Pending State = "pending"
	// Granted: the target accepted the requester.
	Granted State = "granted"
	// Denied: the target refused; the requester is not asked about again until the record
	// expires (retention consent_records) or the target allows her herself.
	Denied State = "denied"
	// Cancelled: the requester withdrew the request.
	Cancelled State = "cancelled"
	// Revoked: the target withdrew a consent she had given; like Denied for new requests.
	Revoked State = "revoked"
)

// Request is one request for consent (or the record of an answer given without one).
type Request struct {
	Requester, Target event.UserURI
	// Room is the room the request is about ("" for any room).
	Room             event.RoomURI
	State            State
	Created, Updated time.Time
}

// Ask records that requester asks target for consent (about room, or any room when ""), and
// returns the request's state afterwards and whether it changed. A request already pending,
// granted, denied or revoked stays as it is (the target is not asked twice, nor again after she
// refused); a cancelled one is pending again. A requester whom target has accepted is Granted
// without a new request.
func (s *Store) Ask(ctx context.Context, requester, target event.UserURI, room event.RoomURI) (State, bool, error) {
	if err := checkUsers(requester, target); err != nil {
		return "", false, err
	}
	var (
		st      State
		changed bool
	)
	err := s.st.InTx(ctx, func(tx *store.Tx) error {
		st, changed = "", false
		var granted int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM consent_grants WHERE target = ? AND requester = ?`, string(target), string(requester)).Scan(&granted); err != nil {
			return err
		}
		cur, err := requestState(ctx, tx, requester, target, room)
		if err != nil {
			return err
		}
		switch {
		case granted > 0:
			st = Granted
			if cur != "" && cur != Granted {
				changed = true
				return setState(ctx, tx, requester, target, room, Granted, s.now())
			}
			return nil
		case cur == Pending || cur == Denied || cur == Revoked:
			st = cur
			return nil
		}
		st, changed = Pending, true
		return setState(ctx, tx, requester, target, room, Pending, s.now())
	})
	if err != nil {
		return "", false, fmt.Errorf("consent: ask: %w", err)
	}
	return st, changed, nil
}

// Cancel withdraws requester's pending request to target about room; it reports whether there
// was one.
func (s *Store) Cancel(ctx context.Context, requester, target event.UserURI, room event.RoomURI) (bool, error) {
	res, err := s.st.ExecContext(ctx, `UPDATE consent_requests SET state = ?, updated_at = ? WHERE requester = ? AND target = ? AND room = ? AND state = ?`,
		string(Cancelled), s.now().UnixMilli(), string(requester), string(target), string(room), string(Pending))
	if err != nil {
		return false, fmt.Errorf("consent: cancel: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("consent: cancel: %w", err)
	}
	return n > 0, nil
}

// Deny records that target refuses requester: a consent she had given ends, her open requests
// from requester are Denied, and requester's later requests stay Denied (Ask) until the record
// expires or target allows her.
func (s *Store) Deny(ctx context.Context, target, requester event.UserURI) error {
	return s.close(ctx, target, requester, Denied)
}

// Revoke withdraws target's consent for requester (idempotent); the record says Revoked, which
// keeps requester's new requests from reaching target like Deny.
func (s *Store) Revoke(ctx context.Context, target, requester event.UserURI) error {
	return s.close(ctx, target, requester, Revoked)
}

// close ends target's consent for requester with state (Denied or Revoked).
func (s *Store) close(ctx context.Context, target, requester event.UserURI, state State) error {
	if err := checkUsers(requester, target); err != nil {
		return err
	}
	err := s.st.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM consent_grants WHERE target = ? AND requester = ?`, string(target), string(requester)); err != nil {
			return err
		}
		return closeRequests(ctx, tx, requester, target, state, s.now())
	})
	if err != nil {
		return fmt.Errorf("consent: %s: %w", state, err)
	}
	return nil
}

// closeRequests sets every request of requester to target to state, and records one about any
// room when there is none.
func closeRequests(ctx context.Context, tx *store.Tx, requester, target event.UserURI, state State, now time.Time) error {
	res, err := tx.ExecContext(ctx, `UPDATE consent_requests SET state = ?, updated_at = ? WHERE requester = ? AND target = ?`,
		string(state), now.UnixMilli(), string(requester), string(target))
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n > 0 {
		return err
	}
	return setState(ctx, tx, requester, target, "", state, now)
}

// Requests returns up to limit requests that user made or received, newest change first.
func (s *Store) Requests(ctx context.Context, user event.UserURI, limit int) ([]Request, error) {
	rows, err := s.st.QueryContext(ctx, `SELECT requester, target, room, state, created_at, updated_at FROM consent_requests
		WHERE requester = ? OR target = ? ORDER BY updated_at DESC, requester, target, room LIMIT ?`, string(user), string(user), limit)
	if err != nil {
		return nil, fmt.Errorf("consent: requests of %s: %w", user, err)
	}
	defer rows.Close()
	var out []Request
	for rows.Next() {
		var r Request
		var req, tgt, room, st string
		var c, u int64
		if err := rows.Scan(&req, &tgt, &room, &st, &c, &u); err != nil {
			return nil, fmt.Errorf("consent: requests of %s: %w", user, err)
		}
		r.Requester, r.Target, r.Room, r.State = event.UserURI(req), event.UserURI(tgt), event.RoomURI(room), State(st)
		r.Created, r.Updated = time.UnixMilli(c).UTC(), time.UnixMilli(u).UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}

// Grants returns up to limit requesters that target has accepted, newest first.
func (s *Store) Grants(ctx context.Context, target event.UserURI, limit int) ([]Grant, error) {
	rows, err := s.st.QueryContext(ctx, `SELECT requester, granted_at FROM consent_grants WHERE target = ? ORDER BY granted_at DESC, requester LIMIT ?`, string(target), limit)
	if err != nil {
		return nil, fmt.Errorf("consent: grants of %s: %w", target, err)
	}
	defer rows.Close()
	var out []Grant
	for rows.Next() {
		var r string
		var at int64
		if err := rows.Scan(&r, &at); err != nil {
			return nil, fmt.Errorf("consent: grants of %s: %w", target, err)
		}
		out = append(out, Grant{Target: target, Requester: event.UserURI(r), Granted: time.UnixMilli(at).UTC()})
	}
	return out, rows.Err()
}

// PruneRecords deletes the records of requests and answers whose last change was before
// `before` (retention consent_records), and the invites that have waited for consent since
// before then, and returns how many it deleted. Settings and grants in force are not records:
// they stay until the user changes them.
func PruneRecords(ctx context.Context, st *store.Store, before time.Time) (int64, error) {
	n, err := st.DeleteWhere(ctx, "consent_requests", []string{"requester", "target", "room"}, `updated_at < ?`, before.UnixMilli())
	if err != nil {
		return n, fmt.Errorf("consent: prune records: %w", err)
	}
	m, err := st.DeleteWhere(ctx, "consent_waits", []string{"requester", "target", "event_id"}, `created_at < ?`, before.UnixMilli())
	if err != nil {
		return n + m, fmt.Errorf("consent: prune waiting invites: %w", err)
	}
	return n + m, nil
}

func requestState(ctx context.Context, tx *store.Tx, requester, target event.UserURI, room event.RoomURI) (State, error) {
	var st string
	err := tx.QueryRowContext(ctx, `SELECT state FROM consent_requests WHERE requester = ? AND target = ? AND room = ?`,
		string(requester), string(target), string(room)).Scan(&st)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return State(st), err
}

func setState(ctx context.Context, tx *store.Tx, requester, target event.UserURI, room event.RoomURI, st State, now time.Time) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO consent_requests (requester, target, room, state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (requester, target, room) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`,
		string(requester), string(target), string(room), string(st), now.UnixMilli(), now.UnixMilli())
	return err
}

// checkUsers refuses requester and target that are not user URIs.
func checkUsers(requester, target event.UserURI) error {
	for _, u := range []event.UserURI{requester, target} {
		if _, err := event.ParseUserURI(string(u)); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	return nil
}

// EraseUser deletes u's setting, the consents u gave or was given and the requests u made or
// received (erasure of a user), and returns how many rows it deleted.
func EraseUser(ctx context.Context, st *store.Store, u event.UserURI) (int64, error) {
	var total int64
	for _, d := range []struct {
		table string
		key   []string
		where string
		args  []any
	}{
		{"consent_reachability", []string{"user_uri"}, `user_uri = ?`, []any{string(u)}},
		{"consent_grants", []string{"target", "requester"}, `target = ? OR requester = ?`, []any{string(u), string(u)}},
		{"consent_requests", []string{"requester", "target", "room"}, `target = ? OR requester = ?`, []any{string(u), string(u)}},
		{"consent_waits", []string{"requester", "target", "event_id"}, `target = ? OR requester = ?`, []any{string(u), string(u)}},
	} {
		n, err := st.DeleteWhere(ctx, d.table, d.key, d.where, d.args...)
		total += n
		if err != nil {
			return total, fmt.Errorf("consent: erase %s: %w", u, err)
		}
	}
	return total, nil
}
