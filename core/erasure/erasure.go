// Package erasure carries out the right to erasure for a local user: a durable request in the
// store, which the running gateway performs in two steps — the user leaves every MIMI room (the
// rooms continue for the others), then every component deletes what it holds about the user.
//
// The request survives restarts: a gateway that stops midway continues at its next start. A
// finished request keeps only its ID, its state and what was removed, never the user.
package erasure

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

//go:embed migrations
var migrationFS embed.FS

// Schema is the package's store component ("erasure").
var Schema = store.MustMigrationsFromFS("erasure", migrationFS, "migrations")

// Request states.
const (
	StatePending = "pending" // queued
	StateLeaving = "leaving" // the user is leaving the rooms
	StateDone    = "done"    // everything removed
	StateFailed  = "failed"  // given up (Result says why)
)

// Leaver makes a user leave every MIMI room (SelfRemove); the MIMI endpoint implements it.
type Leaver interface {
	// LeaveAll asks every room the user is in to remove the user and returns in how many rooms
	// the user still is. It is called again until that is zero.
	LeaveAll(ctx context.Context, u event.UserURI) (remaining int, err error)
}

// Eraser deletes what a component holds about a user.
type Eraser interface {
	// EraseUser deletes every record naming u and returns how many it deleted.
	EraseUser(ctx context.Context, u event.UserURI) (int64, error)
}

// EraserFunc adapts a function to Eraser.
type EraserFunc func(ctx context.Context, u event.UserURI) (int64, error)

// EraseUser implements Eraser.
func (f EraserFunc) EraseUser(ctx context.Context, u event.UserURI) (int64, error) { return f(ctx, u) }

// Status is a request as the requester sees it.
type Status struct {
	ID    string `json:"id"`
	State string `json:"state"`
	// Removed counts the deleted records per component (done), or says why it failed.
	Removed map[string]int64 `json:"removed,omitempty"`
	Error   string           `json:"error,omitempty"`
}

// Request queues the erasure of local user u and returns the request's ID.
func Request(ctx context.Context, st *store.Store, u event.UserURI, now time.Time) (string, error) {
	if _, err := event.ParseUserURI(string(u)); err != nil {
		return "", fmt.Errorf("erasure: %w", err)
	}
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	id := hex.EncodeToString(b)
	ms := now.UnixMilli()
	if _, err := st.ExecContext(ctx, `INSERT INTO erasure_requests (id, user_uri, state, requested_at, updated_at) VALUES (?, ?, ?, ?, ?)`,
		id, string(u), StatePending, ms, ms); err != nil {
		return "", fmt.Errorf("erasure: queue request: %w", err)
	}
	return id, nil
}

// Get returns a request's status.
func Get(ctx context.Context, st *store.Store, id string) (Status, error) {
	var s Status
	var result string
	err := st.QueryRowContext(ctx, `SELECT id, state, result FROM erasure_requests WHERE id = ?`, id).Scan(&s.ID, &s.State, &result)
	if errors.Is(err, sql.ErrNoRows) {
		return s, fmt.Errorf("erasure: no request %s", id)
	}
	if err != nil {
		return s, fmt.Errorf("erasure: read request: %w", err)
	}
	switch s.State {
	case StateDone:
		_ = json.Unmarshal([]byte(result), &s.Removed)
	case StateFailed:
		s.Error = result
	}
	return s, nil
}

// Worker performs queued requests.
type Worker struct {
	st      *store.Store
	log     *slog.Logger
	now     func() time.Time
	leaver  Leaver
	mu      sync.Mutex
	erasers map[string]Eraser
	kick    chan struct{}
}

// NewWorker returns a worker on st; leaver may be nil when the gateway runs no MIMI endpoint.
func NewWorker(st *store.Store, leaver Leaver, log *slog.Logger) *Worker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Worker{st: st, log: log, now: time.Now, leaver: leaver, erasers: map[string]Eraser{}, kick: make(chan struct{}, 1)}
}

// Register adds a component's eraser under a name (the key of Status.Removed).
func (w *Worker) Register(name string, e Eraser) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.erasers[name] = e
}

// Run performs requests at once and then every interval until ctx ends.
func (w *Worker) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := w.RunOnce(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("erasure: pass failed, retrying", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-w.kick:
		}
	}
}

// RunOnce advances every open request by one step.
func (w *Worker) RunOnce(ctx context.Context) error {
	rows, err := w.st.QueryContext(ctx, `SELECT id, user_uri FROM erasure_requests WHERE state IN (?, ?) ORDER BY requested_at`, StatePending, StateLeaving)
	if err != nil {
		return fmt.Errorf("erasure: open requests: %w", err)
	}
	type req struct{ id, user string }
	var open []req
	for rows.Next() {
		var r req
		if err := rows.Scan(&r.id, &r.user); err != nil {
			rows.Close()
			return err
		}
		open = append(open, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	var errs []error
	for _, r := range open {
		if err := w.step(ctx, r.id, event.UserURI(r.user)); err != nil {
			errs = append(errs, fmt.Errorf("request %s: %w", r.id, err))
		}
	}
	return errors.Join(errs...)
}

func (w *Worker) step(ctx context.Context, id string, u event.UserURI) error {
	if w.leaver != nil {
		remaining, err := w.leaver.LeaveAll(ctx, u)
		if err != nil {
			return err
		}
		if remaining > 0 {
			w.log.Info("erasure: waiting for the user's removal from its rooms", "request", id, "rooms", remaining)
			return w.setState(ctx, id, StateLeaving, "", false)
		}
	}
	w.mu.Lock()
	names := make([]string, 0, len(w.erasers))
	for n := range w.erasers {
		names = append(names, n)
	}
	w.mu.Unlock()
	sort.Strings(names)
	removed := map[string]int64{}
	for _, n := range names {
		w.mu.Lock()
		e := w.erasers[n]
		w.mu.Unlock()
		c, err := e.EraseUser(ctx, u)
		if err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
		removed[n] = c
	}
	res, _ := json.Marshal(removed)
	w.log.Info("erasure: user's data erased", "request", id, "removed", string(res))
	return w.setState(ctx, id, StateDone, string(res), true)
}

// setState updates a request; finished requests forget the user.
func (w *Worker) setState(ctx context.Context, id, state, result string, forget bool) error {
	q := `UPDATE erasure_requests SET state = ?, result = ?, updated_at = ? WHERE id = ?`
	if forget {
		q = `UPDATE erasure_requests SET state = ?, result = ?, updated_at = ?, user_uri = '' WHERE id = ?`
	}
	if _, err := w.st.ExecContext(ctx, q, state, result, w.now().UnixMilli(), id); err != nil {
		return fmt.Errorf("erasure: update request: %w", err)
	}
	return nil
}

// Kick makes Run look at the requests now.
func (w *Worker) Kick() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}
