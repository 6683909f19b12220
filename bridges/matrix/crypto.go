package matrix

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/e2ee"
)

// maxPendingBatch bounds the parked events retried at once.
const maxPendingBatch = 100

// pendingRetryInterval is how often parked events are retried without a new session arriving.
const pendingRetryInterval = 30 * time.Second

// setupCrypto creates the E2EE device of cli (the appservice bot's device, or the functional
// account's) with its Olm account and Megolm sessions in the gateway store, and logs in with
// login when the store has no device yet.
func (a *Adapter) setupCrypto(ctx context.Context, cli *mautrix.Client, login *mautrix.ReqLogin, sy mautrix.ExtensibleSyncer) error {
	dev, err := e2ee.NewDevice(ctx, cli, a.db, []byte(a.cfg.Encryption.PickleKey), login, sy)
	if err != nil {
		return fmt.Errorf("matrix: init crypto for %s: %w", cli.UserID, err)
	}
	// Encrypting is done explicitly (encryptFor), so that ghosts' events, which are sent through
	// other clients, use this device too. cli.Crypto stays set for to-device handling.
	cli.Crypto = dev
	dev.Machine().SessionReceived = func(context.Context, id.RoomID, id.SessionID, uint32) { a.kickPending() }
	a.crypto = dev
	a.log.Info("end-to-end encryption ready", "user_id", string(cli.UserID), "device_id", string(cli.DeviceID))
	return nil
}

// encryptFor returns the content to send into room: the content itself in an unencrypted room,
// else an m.room.encrypted payload from this gateway's device (sharing the Megolm session with
// every joined or invited member's devices first when needed).
func (a *Adapter) encryptFor(ctx context.Context, room id.RoomID, t mevent.Type, c any) (mevent.Type, any, error) {
	enc, err := a.stateStore.IsEncrypted(ctx, room)
	if err != nil {
		return t, nil, fmt.Errorf("matrix: encryption state of %s: %w", room, err)
	}
	if !enc {
		return t, c, nil
	}
	if a.crypto == nil {
		return t, nil, fmt.Errorf("matrix: room %s is encrypted but encryption is not set up", room)
	}
	out, err := a.crypto.Encrypt(ctx, room, t, c)
	if err != nil {
		a.metrics.keyShare.WithLabelValues("error").Inc()
		a.log.Error("encrypting outgoing event failed (key sharing)", "room_id", string(room), "type", t.Type, "error", err)
		return t, nil, fmt.Errorf("matrix: encrypt for %s: %w", room, err)
	}
	a.metrics.keyShare.WithLabelValues("ok").Inc()
	return mevent.EventEncrypted, out, nil
}

// decrypt decrypts evt, waiting up to DecryptWait for its room key. Callers hold ingestMu (which
// guards missingSessions).
func (a *Adapter) decrypt(ctx context.Context, evt *mevent.Event) (*mevent.Event, error) {
	if a.crypto == nil {
		return nil, errors.New("matrix: encryption is not set up")
	}
	dec, err := a.crypto.Decrypt(ctx, evt)
	if errors.Is(err, crypto.ErrNoSessionFound) && a.cfg.DecryptWait > 0 {
		c := evt.Content.AsEncrypted()
		// Wait once per missing session: the other events of a transaction from the same session
		// lack the same key, and waiting for each would outlast the homeserver's timeout.
		if last, waited := a.missingSessions[c.SessionID]; !waited || time.Since(last) > 2*a.cfg.DecryptWait {
			if a.crypto.WaitForSession(ctx, evt.RoomID, c.SenderKey, c.SessionID, a.cfg.DecryptWait) {
				delete(a.missingSessions, c.SessionID)
				return a.crypto.Decrypt(ctx, evt)
			}
			if len(a.missingSessions) > 1000 {
				clear(a.missingSessions)
			}
			a.missingSessions[c.SessionID] = time.Now()
		}
	}
	return dec, err
}

// park keeps an encrypted event whose key has not arrived in the store (so nothing is lost when
// the upstream event is acknowledged), asks the sender's devices for the key, and returns nil.
// Events that fail for other reasons are logged, counted and skipped.
func (a *Adapter) park(ctx context.Context, evt *mevent.Event, cause error) error {
	reason := "other"
	if errors.Is(cause, crypto.ErrNoSessionFound) {
		reason = "no_session"
	}
	a.metrics.decryptErrors.WithLabelValues(reason).Inc()
	c := evt.Content.AsEncrypted()
	if reason != "no_session" {
		// Corrupt ciphertext, unknown algorithm, replayed index: waiting will not help.
		a.log.Warn("cannot decrypt event, skipped", "room_id", string(evt.RoomID), "event_id", string(evt.ID),
			"sender", string(evt.Sender), "sender_device", string(c.DeviceID), "session_id", string(c.SessionID), "error", cause)
		return a.markDone(ctx, string(evt.ID))
	}
	a.log.Warn("cannot decrypt event yet, parked until its room key arrives",
		"room_id", string(evt.RoomID), "event_id", string(evt.ID), "sender", string(evt.Sender),
		"sender_device", string(c.DeviceID), "session_id", string(c.SessionID), "reason", reason, "error", cause)
	raw, err := json.Marshal(evt)
	if err != nil {
		return fmt.Errorf("matrix: park %s: %w", evt.ID, err)
	}
	if raw, err = a.st.Seal(sealedPending, raw, string(evt.ID)); err != nil {
		return fmt.Errorf("matrix: park %s: %w", evt.ID, err)
	}
	if _, err := a.st.ExecContext(ctx, `INSERT INTO matrix_pending (event_id, mx_room, raw, received_at, attempts) VALUES (?, ?, ?, ?, 1)
		ON CONFLICT (event_id) DO UPDATE SET attempts = matrix_pending.attempts + 1`,
		string(evt.ID), string(evt.RoomID), raw, time.Now().UnixMilli()); err != nil {
		return transient(fmt.Errorf("matrix: park %s: %w", evt.ID, err))
	}
	a.updatePendingGauge(ctx)
	a.requestKey(ctx, evt)
	return nil
}

// maxKeyRequests bounds the sessions whose last key request the adapter remembers.
const maxKeyRequests = 10000

// requestKey asks the sender's device (and the gateway's own other devices) for the room key of
// a parked event, at most once per KeyRequestInterval per session: the first request, or the
// key sent in answer, may be lost while the homeserver restarts, and the sender's client answers
// a request for a session it shared with the gateway's device.
func (a *Adapter) requestKey(ctx context.Context, evt *mevent.Event) {
	if a.crypto == nil {
		return
	}
	c := evt.Content.AsEncrypted()
	a.keyReqMu.Lock()
	last, ok := a.keyRequested[c.SessionID]
	due := !ok || time.Since(last) >= a.cfg.KeyRequestInterval
	if due {
		if len(a.keyRequested) >= maxKeyRequests {
			clear(a.keyRequested)
		}
		a.keyRequested[c.SessionID] = time.Now()
	}
	a.keyReqMu.Unlock()
	if !due {
		return
	}
	a.metrics.keyRequests.Inc()
	go a.crypto.RequestSession(context.WithoutCancel(ctx), evt.RoomID, c.SenderKey, c.SessionID, evt.Sender, c.DeviceID)
}

// homeserverBack runs after a sync succeeds following failed sync requests: the homeserver was
// unreachable and may have lost to-device messages (room keys, key requests) around its outage.
// The gateway device starts new outbound Megolm sessions (shared again with the next message)
// and asks again at once for the keys of parked events.
func (a *Adapter) homeserverBack(ctx context.Context) {
	a.keyReqMu.Lock()
	clear(a.keyRequested)
	a.keyReqMu.Unlock()
	a.kickPending()
	if a.crypto == nil {
		return
	}
	rows, err := a.st.QueryContext(ctx, `SELECT mx_room FROM matrix_portal`)
	if err != nil {
		a.log.Warn("could not list portals to renew their room keys", "error", err)
		return
	}
	var rooms []id.RoomID
	for rows.Next() {
		var r string
		if rows.Scan(&r) == nil {
			rooms = append(rooms, id.RoomID(r))
		}
	}
	rows.Close()
	store := a.crypto.Machine().CryptoStore
	for _, r := range rooms {
		if err := store.RemoveOutboundGroupSession(ctx, r); err != nil {
			a.log.Warn("could not renew a room key", "room_id", string(r), "error", err)
		}
	}
	a.metrics.rotations.Inc()
	a.log.Info("homeserver reachable again: new outbound room keys for the portals, parked events asked for again", "portals", len(rooms))
}

func (a *Adapter) updatePendingGauge(ctx context.Context) {
	var n int64
	if err := a.st.QueryRowContext(ctx, `SELECT COUNT(*) FROM matrix_pending`).Scan(&n); err == nil {
		a.metrics.pending.Set(float64(n))
	}
}

func (a *Adapter) kickPending() {
	select {
	case a.pendingC <- struct{}{}:
	default:
	}
}

// pendingLoop retries parked events when a new Megolm session arrives and periodically.
func (a *Adapter) pendingLoop(ctx context.Context) {
	t := time.NewTicker(pendingRetryInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.pendingC:
		case <-t.C:
		}
		if err := a.retryPending(ctx); err != nil && ctx.Err() == nil {
			a.log.Warn("retrying parked encrypted events failed", "error", err)
		}
	}
}

// retryPending decrypts and ingests parked events whose keys have arrived.
func (a *Adapter) retryPending(ctx context.Context) error {
	if a.crypto == nil {
		return nil
	}
	rows, err := a.st.QueryContext(ctx, `SELECT event_id, raw, received_at FROM matrix_pending ORDER BY received_at LIMIT ?`, maxPendingBatch)
	if err != nil {
		return fmt.Errorf("matrix: load parked events: %w", err)
	}
	type parked struct {
		id       string
		raw      []byte
		received int64
	}
	var list []parked
	for rows.Next() {
		var p parked
		if err := rows.Scan(&p.id, &p.raw, &p.received); err != nil {
			rows.Close()
			return err
		}
		list = append(list, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, p := range list {
		var evt mevent.Event
		raw, err := a.st.Unseal(sealedPending, p.raw, p.id)
		if err == nil {
			err = json.Unmarshal(raw, &evt)
		}
		if err != nil {
			a.log.Warn("dropping unreadable parked event", "event_id", p.id, "error", err)
			a.unpark(ctx, p.id)
			continue
		}
		_ = evt.Content.ParseRaw(evt.Type)
		dec, err := a.crypto.Decrypt(ctx, &evt)
		if err != nil {
			a.requestKey(ctx, &evt)
			if time.Since(time.UnixMilli(p.received)) >= a.cfg.UnreadableNoticeAfter {
				a.noticeUnreadable(ctx, &evt)
			}
			continue // still no key
		}
		a.ingestMu.Lock()
		err = a.ingestDecrypted(ctx, &evt, dec)
		a.ingestMu.Unlock()
		if err != nil {
			return err
		}
		a.unpark(ctx, p.id)
	}
	a.updatePendingGauge(ctx)
	return nil
}

// noticeUnreadable tells the sender of an event that has waited UnreadableNoticeAfter for its room
// key that the gateway cannot read it (once per event while the adapter runs): a message sent
// before the gateway's device was in the room, or whose key the sender's client did not share with
// it, would otherwise be lost without a word.
func (a *Adapter) noticeUnreadable(ctx context.Context, evt *mevent.Event) {
	if a.unreadableNoticed[evt.ID] {
		return
	}
	err := a.say(ctx, evt.RoomID, evt.ID, evt.Sender, "unreadable", bridges.Say(a.lang(), bridges.PhraseUnreadable))
	if err != nil {
		a.log.Warn("could not tell the sender about an unreadable event", "room_id", string(evt.RoomID), "event_id", string(evt.ID), "error", err)
		return
	}
	a.unreadableNoticed[evt.ID] = true
	a.metrics.inbound.WithLabelValues("unreadable_notice").Inc()
	a.log.Warn("event still unreadable, its sender was told", "room_id", string(evt.RoomID), "event_id", string(evt.ID), "sender", string(evt.Sender))
}

func (a *Adapter) unpark(ctx context.Context, eventID string) {
	delete(a.unreadableNoticed, id.EventID(eventID))
	if _, err := a.st.ExecContext(ctx, `DELETE FROM matrix_pending WHERE event_id = ?`, eventID); err != nil {
		a.log.Warn("removing parked event failed", "event_id", eventID, "error", err)
	}
}

// ingestDecrypted relays a parked event after its decryption. Callers hold ingestMu.
func (a *Adapter) ingestDecrypted(ctx context.Context, outer, dec *mevent.Event) error {
	done, err := a.st.IsProcessed(ctx, scopeEvent, string(outer.ID))
	if err != nil || done {
		return err
	}
	room, ok, err := a.portalByMatrix(ctx, outer.RoomID)
	if err != nil || !ok {
		return err
	}
	p, err := parseEvent(dec)
	if err != nil {
		a.skip(ctx, dec, err)
		return a.markDone(ctx, string(outer.ID))
	}
	return a.relay(ctx, room, p)
}
