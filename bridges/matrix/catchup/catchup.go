// Package catchup hands the room timelines of a Matrix sync response to the adapter, each room's
// events in order: a limited timeline (a gap after an outage or in a busy room) is filled from
// /messages first, history up to the gateway account's own join is cut, and an event that
// fails holds its room until it succeeds or is given up.
//
// Why the sync. In appservice mode the homeserver pushes events in transactions, and retries a
// failed one only after its backoff: Dendrite sleeps 2 s doubling to 64 s between attempts and
// nothing wakes it (it has no appservice ping), Synapse waits up to 8.5 minutes. So after a
// restart, or any time the transactions did not reach the gateway, the events sent meanwhile
// would wait for that backoff. The bot's own sync (it is a member of every portal and
// management room, and its token is kept in the store and advanced only after a response was
// handled) brings the same events within moments: every timeline event of a sync response goes
// through the same ingest as a transaction's, in the room's order, and the processed-events
// dedupe makes whichever of the two comes second harmless. Both deliver each room's events in
// order and each is processed before the next, so neither can act on an event before its
// predecessor. In client mode (TI-Messenger) the functional account's sync is the only source,
// handled the same way.
//
// Order. When an event fails, the room's later events wait: the response's token is kept (the
// other rooms go on; their events come again and are dropped by the dedupe) and the event is
// tried first again. One that keeps failing while the homeserver and the bus answer is given up
// after MaxAttempts (Config.GiveUp tells its sender), never silently dropped.
package catchup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"maunium.net/go/mautrix"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// page is how many events one /messages request asks for when a timeline has a gap.
const page = 100

// Config configures New.
type Config struct {
	// Client reads a gap with /messages.
	Client *mautrix.Client
	// Own is the gateway's account: the room's history up to its join is not handed on.
	Own id.UserID
	// Processed reports whether an event was handled before (the dedupe).
	Processed func(ctx context.Context, evt id.EventID) (bool, error)
	// Ingest handles one event; an error means it is to be tried again.
	Ingest func(ctx context.Context, evt *mevent.Event) error
	// Unreachable reports whether err means that the homeserver does not answer.
	Unreachable func(err error) bool
	// Down reports whether the bus is down (failures then are nobody's event's fault).
	Down func(ctx context.Context) bool
	// GiveUp gives evt up after attempts failures (the last: err): it tells the sender and marks
	// evt handled. An error keeps the room waiting.
	GiveUp func(ctx context.Context, evt *mevent.Event, attempts int, err error) error
	// MaxEvents bounds the events fetched to fill one room's gap. With a larger gap the
	// response is tried again (its token kept) while the homeserver's transactions, which
	// deliver in order, make the gap smaller (appservice mode).
	MaxEvents int
	// MaxAttempts bounds the attempts at an event that fails while the homeserver and the bus
	// answer.
	MaxAttempts int
	Log         *slog.Logger
}

// CatchUp hands sync responses to Config.Ingest. Its methods belong to the sync loop.
type CatchUp struct {
	cfg      Config
	failures map[id.EventID]int // failed attempts at events not handled yet
}

// New returns the catch-up of cfg's account.
func New(cfg Config) *CatchUp {
	return &CatchUp{cfg: cfg, failures: map[id.EventID]int{}}
}

// Response ingests the timeline of every joined and left room of res, oldest first per room.
// The first sync (no since token) is skipped: what happened before the gateway's device existed
// is not relayed.
func (c *CatchUp) Response(ctx context.Context, res *mautrix.RespSync, since string) error {
	if since == "" {
		return nil
	}
	var errs []error
	for room, r := range res.Rooms.Join {
		errs = append(errs, c.room(ctx, room, r.Timeline, since))
	}
	for room, r := range res.Rooms.Leave {
		errs = append(errs, c.room(ctx, room, r.Timeline, since))
	}
	err := errors.Join(errs...)
	if err == nil {
		clear(c.failures) // every event that failed before has been handled now
	}
	return err
}

// room ingests one room's timeline. Events up to the account's own join are history from before
// the room was the gateway's: they are not relayed (the invite that made the room a portal came
// before).
func (c *CatchUp) room(ctx context.Context, room id.RoomID, tl mautrix.SyncTimeline, since string) error {
	events := tl.Events
	if tl.Limited && tl.PrevBatch != "" && !slices.ContainsFunc(events, c.isOwnJoin) {
		older, complete, err := c.fillGap(ctx, room, tl.PrevBatch, since)
		if err != nil || !complete {
			return err // a gap that cannot be read is left whole to the transactions
		}
		events = append(older, events...)
	}
	if i := lastIndexFunc(events, c.isOwnJoin); i >= 0 {
		events = events[i+1:]
	}
	for _, evt := range events {
		e := *evt // the syncer parses and dispatches the original afterwards
		e.RoomID = room
		if err := c.cfg.Ingest(ctx, &e); err != nil {
			if err := c.failed(ctx, &e, err); err != nil {
				return err
			}
		}
	}
	return nil
}

// failed counts a failed attempt at evt and returns err, which keeps the room waiting behind
// evt; after MaxAttempts it returns what GiveUp returns. Failures while the homeserver or the
// bus is down, or while the adapter stops, are not counted.
func (c *CatchUp) failed(ctx context.Context, evt *mevent.Event, err error) error {
	if ctx.Err() != nil || c.cfg.Unreachable(err) || c.cfg.Down(ctx) {
		return err
	}
	c.failures[evt.ID]++
	n := c.failures[evt.ID]
	if n < c.cfg.MaxAttempts {
		return err
	}
	if err := c.cfg.GiveUp(ctx, evt, n, err); err != nil {
		return err
	}
	delete(c.failures, evt.ID)
	return nil
}

// fillGap returns, oldest first, the events of room between the sync token since and the
// timeline's prev_batch token (from) that the gateway has not handled yet: it pages backwards
// and stops at an event already processed (everything before it was handled in order) or at the
// account's own join. complete is false when the homeserver refuses to page the gap: the room is
// then left to the transactions.
func (c *CatchUp) fillGap(ctx context.Context, room id.RoomID, from, since string) (older []*mevent.Event, complete bool, err error) {
	defer func() { slices.Reverse(older) }() // collected newest first
	for len(older) < c.cfg.MaxEvents {
		resp, err := c.cfg.Client.Messages(ctx, room, from, since, mautrix.DirectionBackward, nil, page)
		if err != nil && c.cfg.Unreachable(err) {
			return nil, false, fmt.Errorf("matrix: catch-up of %s: %w", room, err)
		} else if err != nil { // refused (e.g. a room left and forgotten): retrying would block the sync
			c.cfg.Log.Warn("gap in the sync not readable, left to the homeserver's transactions", "room_id", string(room), "error", err)
			return nil, false, nil
		}
		for _, evt := range resp.Chunk {
			if c.isOwnJoin(evt) {
				return older, true, nil
			}
			done, err := c.cfg.Processed(ctx, evt.ID)
			if err != nil {
				return nil, false, fmt.Errorf("matrix: catch-up of %s: %w", room, err)
			}
			if done {
				return older, true, nil
			}
			older = append(older, evt)
		}
		if len(resp.Chunk) == 0 || resp.End == "" || resp.End == from {
			return older, true, nil
		}
		from = resp.End
	}
	// The sync response is tried again (its token kept) while the transactions, which the
	// homeserver retries meanwhile, handle the oldest of these events; the gap shrinks until it fits.
	return nil, false, fmt.Errorf("matrix: catch-up of %s: more than %d events not handled yet, waiting for the homeserver's transactions", room, c.cfg.MaxEvents)
}

func lastIndexFunc[T any](s []T, f func(T) bool) int {
	for i := len(s) - 1; i >= 0; i-- {
		if f(s[i]) {
			return i
		}
	}
	return -1
}

// isOwnJoin reports whether evt is the account's join of its room.
func (c *CatchUp) isOwnJoin(evt *mevent.Event) bool {
	if evt.Type != mevent.StateMember || evt.GetStateKey() != string(c.cfg.Own) {
		return false
	}
	m, _ := evt.Content.Raw["membership"].(string)
	return m == string(mevent.MembershipJoin)
}
