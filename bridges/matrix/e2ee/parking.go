package e2ee

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// Parking: an encrypted event whose room key has not arrived is kept in the store (table
// matrix_pending of the adapter's migrations, its raw column sealed: SealedPending), so that the
// upstream event can be acknowledged without losing it. Its key is asked for again now and then,
// it is decrypted and handed back when the key arrives, and its sender is told once when it
// stays unreadable.
//
// A room keeps its order: while one of its events waits for its key, every later event of the
// room waits behind it (Holds, Behind), and the parked events of a room are handed back in the
// order they came, never one before an earlier one that still waits. An event that stays
// unreadable for UnreadableAfter stops holding its room (its sender is told): the events behind
// it go on, and it is still handed back if its key comes later.

// SealedPending is a parked encrypted event (its JSON: sender, room, Megolm ciphertext), sealed
// with the store's key and bound to the event ID.
var SealedPending = store.SealedColumn{Table: "matrix_pending", Column: "raw", Key: []string{"event_id"}}

// maxPendingBatch bounds the parked events retried at once.
const maxPendingBatch = 100

// pendingRetryInterval is how often parked events are retried without a new session arriving.
const pendingRetryInterval = 30 * time.Second

// maxKeyRequests bounds the sessions whose last key request the parking remembers.
const maxKeyRequests = 10000

// ParkingConfig configures NewParking.
type ParkingConfig struct {
	Store *store.Store
	Log   *slog.Logger
	// DecryptWait is how long Decrypt waits for a missing room key (once per session).
	DecryptWait time.Duration
	// KeyRequestInterval is how often the key of a parked event is asked for again.
	KeyRequestInterval time.Duration
	// UnreadableAfter is how long a parked event waits before its sender is told (Unreadable).
	UnreadableAfter time.Duration
	// Done marks an event as handled: one that can never be decrypted.
	Done func(ctx context.Context, evt id.EventID) error
	// Relay hands an event decrypted after it was parked (outer: the encrypted event) back to
	// the adapter; an error stops the retry round, and the event stays parked.
	Relay func(ctx context.Context, outer, dec *mevent.Event) error
	// Unreadable tells the sender of evt that the gateway cannot read it; nil means told.
	Unreadable func(ctx context.Context, evt *mevent.Event) error
	// Metrics count what the parking does (default: unregistered ones).
	Metrics *Metrics
}

// Parking decrypts incoming events with a Device and keeps those whose keys are missing until
// the keys arrive.
type Parking struct {
	cfg ParkingConfig
	dev *Device
	// mu guards missingSessions and keyRequested.
	mu sync.Mutex
	// missingSessions remembers Megolm sessions whose key did not arrive within DecryptWait.
	missingSessions map[id.SessionID]time.Time
	// keyRequested is when each missing room key was last asked for.
	keyRequested map[id.SessionID]time.Time
	// unreadableNoticed are the parked events whose senders were told (owned by Loop).
	unreadableNoticed map[id.EventID]bool
	kick              chan struct{}
}

// NewParking returns the parking of dev's events; a new room key retries the parked events.
func NewParking(dev *Device, cfg ParkingConfig) *Parking {
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	p := &Parking{cfg: cfg, dev: dev, missingSessions: map[id.SessionID]time.Time{},
		keyRequested: map[id.SessionID]time.Time{}, unreadableNoticed: map[id.EventID]bool{}, kick: make(chan struct{}, 1)}
	dev.Machine().SessionReceived = func(context.Context, id.RoomID, id.SessionID, uint32) { p.Kick() }
	return p
}

// Decrypt decrypts evt, waiting up to DecryptWait for its room key: once per missing session,
// since the other events of a transaction from the same session lack the same key, and waiting
// for each would outlast the homeserver's timeout. Inside the sync loop it does not wait: room
// keys arrive only through that loop (to-device messages, handled before the timeline).
func (p *Parking) Decrypt(ctx context.Context, evt *mevent.Event) (*mevent.Event, error) {
	dec, err := p.dev.Decrypt(ctx, evt)
	inSync := ctx.Value(mautrix.SyncTokenContextKey) != nil
	if !errors.Is(err, crypto.ErrNoSessionFound) || p.cfg.DecryptWait <= 0 || inSync {
		return dec, err
	}
	c := evt.Content.AsEncrypted()
	p.mu.Lock()
	last, waited := p.missingSessions[c.SessionID]
	p.mu.Unlock()
	if waited && time.Since(last) <= 2*p.cfg.DecryptWait {
		return dec, err
	}
	if p.dev.WaitForSession(ctx, evt.RoomID, c.SenderKey, c.SessionID, p.cfg.DecryptWait) {
		p.mu.Lock()
		delete(p.missingSessions, c.SessionID)
		p.mu.Unlock()
		return p.dev.Decrypt(ctx, evt)
	}
	p.mu.Lock()
	if len(p.missingSessions) > 1000 {
		clear(p.missingSessions)
	}
	p.missingSessions[c.SessionID] = time.Now()
	p.mu.Unlock()
	return dec, err
}

// Park keeps evt, which could not be decrypted because of cause, in the store until its room key
// arrives, and asks the sender's devices for the key. An event that failed for another reason
// (corrupt ciphertext, unknown algorithm, replayed index: waiting will not help) is logged,
// counted and marked done.
func (p *Parking) Park(ctx context.Context, evt *mevent.Event, cause error) error {
	reason := "other"
	if errors.Is(cause, crypto.ErrNoSessionFound) {
		reason = "no_session"
	}
	p.cfg.Metrics.DecryptErrors.WithLabelValues(reason).Inc()
	c := evt.Content.AsEncrypted()
	if reason != "no_session" {
		p.cfg.Log.Warn("cannot decrypt event, skipped", "room_id", string(evt.RoomID), "event_id", string(evt.ID),
			"sender", string(evt.Sender), "sender_device", string(c.DeviceID), "session_id", string(c.SessionID), "error", cause)
		return p.cfg.Done(ctx, evt.ID)
	}
	p.cfg.Log.Warn("cannot decrypt event yet, parked until its room key arrives",
		"room_id", string(evt.RoomID), "event_id", string(evt.ID), "sender", string(evt.Sender),
		"sender_device", string(c.DeviceID), "session_id", string(c.SessionID), "reason", reason, "error", cause)
	if err := p.insert(ctx, evt, 1); err != nil {
		return err
	}
	p.updateGauge(ctx)
	p.requestKey(ctx, evt)
	return nil
}

// Holds reports whether room has parked events that later events of the room must wait behind.
func (p *Parking) Holds(ctx context.Context, room id.RoomID) (bool, error) {
	var one int
	err := p.cfg.Store.QueryRowContext(ctx, `SELECT 1 FROM matrix_pending WHERE mx_room = ? AND attempts >= 0 LIMIT 1`, string(room)).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("matrix: parked events of %s: %w", room, err)
	}
	return true, nil
}

// Behind parks evt (encrypted or not) behind the parked events of its room (Holds), to be handed
// back after them in order; the retry runs at once.
func (p *Parking) Behind(ctx context.Context, evt *mevent.Event) error {
	p.cfg.Log.Info("event waits behind an earlier event of its room whose room key has not arrived",
		"room_id", string(evt.RoomID), "event_id", string(evt.ID), "type", evt.Type.Type)
	if err := p.insert(ctx, evt, 0); err != nil {
		return err
	}
	p.updateGauge(ctx)
	p.Kick()
	return nil
}

// insert stores evt sealed as the last parked event of its room: its received_at is now, or one
// millisecond after the room's last one, so that the room's order is the order of received_at.
// A redelivered event keeps its place (attempts counts the deliveries of a key-less one; one
// that no longer holds its room, attempts -1, stays so).
func (p *Parking) insert(ctx context.Context, evt *mevent.Event, attempts int) error {
	raw, err := json.Marshal(evt)
	if err != nil {
		return fmt.Errorf("matrix: park %s: %w", evt.ID, err)
	}
	st := p.cfg.Store
	if raw, err = st.Seal(SealedPending, raw, string(evt.ID)); err != nil {
		return fmt.Errorf("matrix: park %s: %w", evt.ID, err)
	}
	err = st.InTx(ctx, func(tx *store.Tx) error {
		var last sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT MAX(received_at) FROM matrix_pending WHERE mx_room = ?`, string(evt.RoomID)).Scan(&last); err != nil {
			return err
		}
		at := time.Now().UnixMilli()
		if last.Valid && last.Int64 >= at {
			at = last.Int64 + 1
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO matrix_pending (event_id, mx_room, raw, received_at, attempts) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (event_id) DO UPDATE SET attempts = CASE WHEN matrix_pending.attempts < 0 THEN matrix_pending.attempts ELSE matrix_pending.attempts + ? END`,
			string(evt.ID), string(evt.RoomID), raw, at, attempts, attempts)
		return err
	})
	if err != nil {
		return fmt.Errorf("matrix: park %s: %w", evt.ID, err)
	}
	return nil
}

// requestKey asks the sender's device (and the gateway's own other devices) for the room key of
// a parked event, at most once per KeyRequestInterval per session: the first request, or the
// key sent in answer, may be lost while the homeserver restarts, and the sender's client answers
// a request for a session it shared with the gateway's device.
func (p *Parking) requestKey(ctx context.Context, evt *mevent.Event) {
	c := evt.Content.AsEncrypted()
	p.mu.Lock()
	last, ok := p.keyRequested[c.SessionID]
	due := !ok || time.Since(last) >= p.cfg.KeyRequestInterval
	if due {
		if len(p.keyRequested) >= maxKeyRequests {
			clear(p.keyRequested)
		}
		p.keyRequested[c.SessionID] = time.Now()
	}
	p.mu.Unlock()
	if !due {
		return
	}
	p.cfg.Metrics.KeyRequests.Inc()
	go p.dev.RequestSession(context.WithoutCancel(ctx), evt.RoomID, c.SenderKey, c.SessionID, evt.Sender, c.DeviceID)
}

// AskAgain forgets when the keys of parked events were asked for and retries them now: after
// the homeserver was unreachable, requests and the keys sent in answer may have been lost.
func (p *Parking) AskAgain() {
	p.mu.Lock()
	clear(p.keyRequested)
	p.mu.Unlock()
	p.Kick()
}

// Renew makes the device start new outbound Megolm sessions in rooms (shared again with the next
// message): after the homeserver was unreachable, it may have lost the to-device messages that
// carried the room keys.
func (p *Parking) Renew(ctx context.Context, rooms []id.RoomID) {
	cs := p.dev.Machine().CryptoStore
	for _, r := range rooms {
		if err := cs.RemoveOutboundGroupSession(ctx, r); err != nil {
			p.cfg.Log.Warn("could not renew a room key", "room_id", string(r), "error", err)
		}
	}
	p.cfg.Metrics.Rotations.Inc()
}

func (p *Parking) updateGauge(ctx context.Context) {
	var n int64
	if err := p.cfg.Store.QueryRowContext(ctx, `SELECT COUNT(*) FROM matrix_pending`).Scan(&n); err == nil {
		p.cfg.Metrics.Pending.Set(float64(n))
	}
}

// Kick makes Loop retry the parked events now.
func (p *Parking) Kick() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// Loop retries parked events when a new Megolm session arrives (Kick) and periodically, until ctx
// ends.
func (p *Parking) Loop(ctx context.Context) {
	t := time.NewTicker(pendingRetryInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
		case <-t.C:
		}
		if err := p.retry(ctx); err != nil && ctx.Err() == nil {
			p.cfg.Log.Warn("retrying parked encrypted events failed", "error", err)
		}
	}
}

// retry hands back the parked events that can go, room by room in the order they came: an
// encrypted one whose key has arrived (decrypted), one that waited behind it, and so on, until
// one whose key is still missing; that one holds the rest of its room until it has been
// unreadable for UnreadableAfter (its sender is then told, and it no longer holds the room).
func (p *Parking) retry(ctx context.Context) error {
	rooms, err := p.parkedRooms(ctx)
	if err != nil {
		return err
	}
	for _, room := range rooms {
		if err := p.retryRoom(ctx, room); err != nil {
			return err
		}
	}
	p.updateGauge(ctx)
	return nil
}

// parkedRooms lists the rooms with parked events.
func (p *Parking) parkedRooms(ctx context.Context) ([]string, error) {
	rows, err := p.cfg.Store.QueryContext(ctx, `SELECT DISTINCT mx_room FROM matrix_pending`)
	if err != nil {
		return nil, fmt.Errorf("matrix: load parked events: %w", err)
	}
	defer rows.Close()
	var rooms []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			return nil, err
		}
		rooms = append(rooms, r)
	}
	return rooms, rows.Err()
}

// parkedEvent is one row of matrix_pending.
type parkedEvent struct {
	id       string
	raw      []byte
	received int64
	attempts int64
}

// retryRoom hands back room's parked events in order (retry).
func (p *Parking) retryRoom(ctx context.Context, room string) error {
	st := p.cfg.Store
	rows, err := st.QueryContext(ctx, `SELECT event_id, raw, received_at, attempts FROM matrix_pending WHERE mx_room = ? ORDER BY received_at LIMIT ?`,
		room, maxPendingBatch)
	if err != nil {
		return fmt.Errorf("matrix: load parked events of %s: %w", room, err)
	}
	var list []parkedEvent
	for rows.Next() {
		var e parkedEvent
		if err := rows.Scan(&e.id, &e.raw, &e.received, &e.attempts); err != nil {
			rows.Close()
			return err
		}
		list = append(list, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, e := range list {
		var evt mevent.Event
		raw, err := st.Unseal(SealedPending, e.raw, e.id)
		if err == nil {
			err = json.Unmarshal(raw, &evt)
		}
		if err != nil {
			p.cfg.Log.Warn("dropping unreadable parked event", "event_id", e.id, "error", err)
			p.unpark(ctx, e.id)
			continue
		}
		_ = evt.Content.ParseRaw(evt.Type)
		dec := &evt
		if evt.Type == mevent.EventEncrypted {
			if dec, err = p.dev.Decrypt(ctx, &evt); err != nil {
				p.requestKey(ctx, &evt)
				if e.attempts >= 0 && time.Since(time.UnixMilli(e.received)) < p.cfg.UnreadableAfter {
					return nil // still no key: the room's later events wait behind it
				}
				// Unreadable for long: its sender is told, and it no longer holds the room.
				p.noticeUnreadable(ctx, &evt)
				if e.attempts >= 0 {
					if _, err := st.ExecContext(ctx, `UPDATE matrix_pending SET attempts = -1 WHERE event_id = ?`, e.id); err != nil {
						return fmt.Errorf("matrix: release parked event %s: %w", e.id, err)
					}
				}
				continue
			}
		}
		if err := p.cfg.Relay(ctx, &evt, dec); err != nil {
			return err
		}
		p.unpark(ctx, e.id)
	}
	return nil
}

// noticeUnreadable tells the sender of an event that has waited UnreadableAfter for its room key
// that the gateway cannot read it (once per event while the adapter runs): a message sent before
// the gateway's device was in the room, or whose key the sender's client did not share with it,
// would otherwise be lost without a word.
func (p *Parking) noticeUnreadable(ctx context.Context, evt *mevent.Event) {
	if p.unreadableNoticed[evt.ID] {
		return
	}
	if err := p.cfg.Unreadable(ctx, evt); err != nil {
		p.cfg.Log.Warn("could not tell the sender about an unreadable event", "room_id", string(evt.RoomID), "event_id", string(evt.ID), "error", err)
		return
	}
	p.unreadableNoticed[evt.ID] = true
	p.cfg.Log.Warn("event still unreadable, its sender was told", "room_id", string(evt.RoomID), "event_id", string(evt.ID), "sender", string(evt.Sender))
}

func (p *Parking) unpark(ctx context.Context, eventID string) {
	delete(p.unreadableNoticed, id.EventID(eventID))
	if _, err := p.cfg.Store.ExecContext(ctx, `DELETE FROM matrix_pending WHERE event_id = ?`, eventID); err != nil {
		p.cfg.Log.Warn("removing parked event failed", "event_id", eventID, "error", err)
	}
}

// ErasePending deletes the parked events that user sent (the erasure of a user's data).
func ErasePending(ctx context.Context, st *store.Store, user id.UserID) (int64, error) {
	rows, err := st.QueryContext(ctx, `SELECT event_id, raw FROM matrix_pending`)
	if err != nil {
		return 0, fmt.Errorf("matrix: erase parked events: %w", err)
	}
	var ids []string
	for rows.Next() {
		var evID string
		var raw []byte
		if err := rows.Scan(&evID, &raw); err != nil {
			rows.Close()
			return 0, err
		}
		pt, err := st.Unseal(SealedPending, raw, evID)
		if err != nil {
			continue
		}
		var e struct {
			Sender id.UserID `json:"sender"`
		}
		if json.Unmarshal(pt, &e) == nil && e.Sender == user {
			ids = append(ids, evID)
		}
	}
	rows.Close()
	var total int64
	for _, evID := range ids {
		res, err := st.ExecContext(ctx, `DELETE FROM matrix_pending WHERE event_id = ?`, evID)
		if err != nil {
			return total, fmt.Errorf("matrix: erase parked event: %w", err)
		}
		if c, err := res.RowsAffected(); err == nil {
			total += c
		}
	}
	return total, rows.Err()
}
