package consent

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// Our users ask partners' users too: an invite of a partner's user who has not accepted ours
// waits (Wait) while a request for consent is out, and goes on when she grants it (Waiting,
// Done). The partner's answers are recorded as requests of ours (Answered).

// Answered records the answer of target, a partner's user, to our user requester (Granted or
// Revoked, from updateConsent; Pending when we ask).
func (s *Store) Answered(ctx context.Context, requester, target event.UserURI, room event.RoomURI, st State) error {
	if err := checkUsers(requester, target); err != nil {
		return err
	}
	err := s.st.InTx(ctx, func(tx *store.Tx) error {
		if st == Granted || st == Revoked {
			return closeRequests(ctx, tx, requester, target, st, s.now())
		}
		return setState(ctx, tx, requester, target, room, st, s.now())
	})
	if err != nil {
		return fmt.Errorf("consent: answer of %s to %s: %w", target, requester, err)
	}
	return nil
}

// Wait keeps envelope (encoded; its ID id) until target accepts requester (idempotent).
func (s *Store) Wait(ctx context.Context, requester, target event.UserURI, id event.EventID, envelope []byte) error {
	if err := checkUsers(requester, target); err != nil {
		return err
	}
	_, err := s.st.ExecContext(ctx, `INSERT INTO consent_waits (requester, target, event_id, envelope, created_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (requester, target, event_id) DO NOTHING`, string(requester), string(target), string(id), envelope, s.now().UnixMilli())
	if err != nil {
		return fmt.Errorf("consent: keep an invite of %s by %s: %w", target, requester, err)
	}
	return nil
}

// Waiting is an envelope kept by Wait.
type Waiting struct {
	ID       event.EventID
	Envelope []byte
}

// Waiting returns the envelopes that wait for target to accept requester, oldest first.
func (s *Store) Waiting(ctx context.Context, requester, target event.UserURI) ([]Waiting, error) {
	rows, err := s.st.QueryContext(ctx, `SELECT event_id, envelope FROM consent_waits WHERE requester = ? AND target = ? ORDER BY created_at, event_id`,
		string(requester), string(target))
	if err != nil {
		return nil, fmt.Errorf("consent: invites waiting for %s: %w", target, err)
	}
	defer rows.Close()
	var out []Waiting
	for rows.Next() {
		var w Waiting
		var id string
		if err := rows.Scan(&id, &w.Envelope); err != nil {
			return nil, fmt.Errorf("consent: invites waiting for %s: %w", target, err)
		}
		w.ID = event.EventID(id)
		out = append(out, w)
	}
	return out, rows.Err()
}

// Done forgets a kept envelope (published again, or dropped).
func (s *Store) Done(ctx context.Context, requester, target event.UserURI, id event.EventID) error {
	_, err := s.st.ExecContext(ctx, `DELETE FROM consent_waits WHERE requester = ? AND target = ? AND event_id = ?`, string(requester), string(target), string(id))
	if err != nil {
		return fmt.Errorf("consent: forget a kept invite: %w", err)
	}
	return nil
}

// LastState returns the state of the latest change of requester's requests to target (any
// room), or "" when there is none.
func (s *Store) LastState(ctx context.Context, requester, target event.UserURI) (State, error) {
	var st string
	err := s.st.QueryRowContext(ctx, `SELECT state FROM consent_requests WHERE requester = ? AND target = ? ORDER BY updated_at DESC, room LIMIT 1`,
		string(requester), string(target)).Scan(&st)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("consent: state of %s's requests to %s: %w", requester, target, err)
	}
	return State(st), nil
}
