// Package receipts sends the read receipts that partner users' status reports become outside
// the rooms' ordered message path, coalesced: only the latest receipt of a user in a room
// matters (a Matrix read receipt says "read up to here"), so while the homeserver is slow or a
// backlog drains, a user's receipts that were not sent yet are replaced by the newest one
// instead of each costing a request in the room's queue before the next message.
//
// A receipt is durable when Put returns (a key of the store's key-value table per room and
// user, holding the event ID), so the envelope that brought it may be acknowledged at once; a
// crash before it was sent leaves it pending for the next run. Put is called in the room's
// order, after the message the receipt names was sent, so a receipt never refers to a message
// the homeserver does not have yet. A sent receipt is removed only if no newer one replaced it
// meanwhile; a receipt sent twice (a crash between the send and the removal) is harmless.
package receipts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/sendonce"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// Scope is the key-value scope of the pending receipts.
const Scope store.Scope = "matrix.receipts"

const (
	// firstRetry is the wait before a failed send is tried again; it doubles up to maxRetry.
	firstRetry = time.Second
	maxRetry   = 30 * time.Second
	// settle is how long Run lets receipts gather after a Put before it sends: while a backlog
	// drains, the receipts put meanwhile are replaced by the newest instead of each being sent.
	settle = 250 * time.Millisecond
)

// SendFunc sends user's read receipt on event ev in room to the homeserver.
type SendFunc func(ctx context.Context, room id.RoomID, user id.UserID, ev id.EventID) error

// Queue holds the pending read receipts and sends them (Run).
type Queue struct {
	kv   *store.KV
	send SendFunc
	log  *slog.Logger
	wake chan struct{}
}

// New returns a queue over st's key-value table that sends with send.
func New(st *store.Store, send SendFunc, log *slog.Logger) *Queue {
	return &Queue{kv: st.KV(Scope), send: send, log: log, wake: make(chan struct{}, 1)}
}

// key is the store key of user's receipt in room (room and user IDs contain no space).
func key(room id.RoomID, user id.UserID) string { return string(room) + " " + string(user) }

// Put records that user has read room up to ev, replacing the user's receipt in room that was
// not sent yet, and wakes Run. The receipt is durable when Put returns nil.
func (q *Queue) Put(ctx context.Context, room id.RoomID, user id.UserID, ev id.EventID) error {
	if room == "" || user == "" || ev == "" {
		return fmt.Errorf("receipts: read receipt needs room, user and event (%q, %q, %q)", room, user, ev)
	}
	if _, err := q.kv.Put(ctx, key(room, user), []byte(ev)); err != nil {
		return fmt.Errorf("receipts: record read receipt of %s in %s: %w", user, room, err)
	}
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return nil
}

// Run sends the pending receipts (those of earlier runs first) until ctx ends: 250 ms after a
// Put (gathering the receipts put meanwhile), and again after a failure, waiting 1 s doubling to
// 30 s. A receipt the homeserver refuses (an
// answer below 500, e.g. the user is no longer in the room) is dropped with a warning.
func (q *Queue) Run(ctx context.Context) {
	wait := firstRetry
	for {
		if err := q.Flush(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			q.log.Warn("read receipts not sent, trying again", "retry_in", wait.String(), "error", err)
			select {
			case <-ctx.Done():
				return
			case <-q.wake:
			case <-time.After(wait):
			}
			wait = min(2*wait, maxRetry)
			continue
		}
		wait = firstRetry
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(settle):
		}
	}
}

// Flush sends every pending receipt once and removes each one sent (or refused) unless a newer
// one replaced it meanwhile. It returns the errors of the receipts left pending.
func (q *Queue) Flush(ctx context.Context) error {
	keys, err := q.pending(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, k := range keys {
		if err := q.sendOne(ctx, k); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (q *Queue) sendOne(ctx context.Context, k string) error {
	room, user, ok := strings.Cut(k, " ")
	e, err := q.kv.Get(ctx, k)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("receipts: read %q: %w", k, err)
	}
	ev := id.EventID(e.Value)
	if !ok {
		q.log.Warn("read receipt with an unreadable key dropped", "key", k)
	} else if err := q.send(ctx, id.RoomID(room), id.UserID(user), ev); err != nil {
		if sendonce.MayHaveArrived(err) {
			return fmt.Errorf("receipts: read receipt of %s in %s on %s: %w", user, room, ev, err)
		}
		q.log.Warn("read receipt refused by the homeserver, dropped", "room_id", room, "user_id", user, "event_id", string(ev), "error", err)
	}
	if err := q.kv.CompareAndDelete(ctx, k, e.Version); err != nil && !errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("receipts: remove sent read receipt %q: %w", k, err)
	}
	return nil
}

// pending lists the keys of the receipts not sent yet.
func (q *Queue) pending(ctx context.Context) ([]string, error) {
	keys, err := q.kv.Keys(ctx)
	if err != nil {
		return nil, fmt.Errorf("receipts: list pending: %w", err)
	}
	return keys, nil
}
