package matrix

import (
	"context"
	"fmt"
	"slices"

	"maunium.net/go/mautrix"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Catch-up (appservice mode). The homeserver pushes events in transactions, and retries a
// failed one only after its backoff: Dendrite sleeps 2 s doubling to 64 s between attempts and
// nothing wakes it (it has no appservice ping), Synapse waits up to 8.5 minutes. So after a
// restart, or any time the transactions did not reach the gateway, the events sent meanwhile
// would wait for that backoff. The bot's own sync (it is a member of every portal and
// management room, and its token is kept in the store and advanced only after a response was
// handled) brings the same events within moments: every timeline event of a sync response goes
// through the same ingest as a transaction's, in the room's order, and the processed-events
// dedupe makes whichever of the two comes second harmless. Both deliver each room's events in
// order and each is processed before the next, so neither can act on an event before its
// predecessor.

// catchUpPage is how many events one /messages request asks for when a timeline has a gap.
const catchUpPage = 100

// maxCatchUpEvents bounds the events fetched to fill one room's gap. With a larger gap the sync
// waits until the homeserver's transactions, which deliver in order, have made it smaller (a
// variable for the test of that case).
var maxCatchUpEvents = 5000

// catchUp ingests the timeline of every room in a sync response of the bot, oldest first per
// room, after filling a gap (a limited timeline) from /messages. The first sync (no since token)
// is skipped: what happened before the gateway's device existed is not relayed.
func (a *Adapter) catchUp(ctx context.Context, res *mautrix.RespSync, since string) error {
	if since == "" {
		return nil
	}
	for room, r := range res.Rooms.Join {
		if err := a.catchUpRoom(ctx, room, r.Timeline, since); err != nil {
			return err
		}
	}
	for room, r := range res.Rooms.Leave {
		if err := a.catchUpRoom(ctx, room, r.Timeline, since); err != nil {
			return err
		}
	}
	return nil
}

// catchUpRoom ingests one room's timeline. Events up to the bot's own join are history from
// before the room was the gateway's: they are not relayed (an invite that made the room a portal
// came in a transaction).
func (a *Adapter) catchUpRoom(ctx context.Context, room id.RoomID, tl mautrix.SyncTimeline, since string) error {
	events := tl.Events
	if tl.Limited && tl.PrevBatch != "" && !slices.ContainsFunc(events, a.isOwnJoin) {
		older, complete, err := a.fillGap(ctx, room, tl.PrevBatch, since)
		if err != nil || !complete {
			return err // a gap that cannot be read is left whole to the transactions
		}
		events = append(older, events...)
	}
	if i := lastIndexFunc(events, a.isOwnJoin); i >= 0 {
		events = events[i+1:]
	}
	for _, evt := range events {
		e := *evt // the syncer parses and dispatches the original afterwards
		e.RoomID = room
		if err := a.ingestEvent(ctx, &e); err != nil {
			return err
		}
	}
	return nil
}

// fillGap returns, oldest first, the events of room between the sync token since and the
// timeline's prev_batch token (from) that the gateway has not handled yet: it pages backwards
// and stops at an event already processed (everything before it was handled in order) or at the
// bot's own join. complete is false when the homeserver refuses to page the gap: the room is
// then left to the transactions.
func (a *Adapter) fillGap(ctx context.Context, room id.RoomID, from, since string) (older []*mevent.Event, complete bool, err error) {
	defer func() { slices.Reverse(older) }() // collected newest first
	for len(older) < maxCatchUpEvents {
		resp, err := a.client.Messages(ctx, room, from, since, mautrix.DirectionBackward, nil, catchUpPage)
		if err != nil && a.ServerUnreachable(err) {
			return nil, false, transient(fmt.Errorf("matrix: catch-up of %s: %w", room, err))
		} else if err != nil { // refused (e.g. a room left and forgotten): retrying would block the sync
			a.log.Warn("gap in the bot's sync not readable, left to the homeserver's transactions", "room_id", string(room), "error", err)
			return nil, false, nil
		}
		for _, evt := range resp.Chunk {
			if a.isOwnJoin(evt) {
				return older, true, nil
			}
			done, err := a.st.IsProcessed(ctx, scopeEvent, string(evt.ID))
			if err != nil {
				return nil, false, transient(fmt.Errorf("matrix: catch-up of %s: %w", room, err))
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
	return nil, false, transient(fmt.Errorf("matrix: catch-up of %s: more than %d events not handled yet, waiting for the homeserver's transactions", room, maxCatchUpEvents))
}

func lastIndexFunc[T any](s []T, f func(T) bool) int {
	for i := len(s) - 1; i >= 0; i-- {
		if f(s[i]) {
			return i
		}
	}
	return -1
}

// isOwnJoin reports whether evt is the bot's join of its room.
func (a *Adapter) isOwnJoin(evt *mevent.Event) bool {
	if evt.Type != mevent.StateMember || evt.GetStateKey() != string(a.botUserID()) {
		return false
	}
	m, _ := evt.Content.Raw["membership"].(string)
	return m == string(mevent.MembershipJoin)
}
