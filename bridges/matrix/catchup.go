package matrix

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	"maunium.net/go/mautrix"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/catchup"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/e2ee"
)

// maxCatchUpEvents bounds the events fetched to fill one room's gap (catchup.Config.MaxEvents;
// a variable for the test of a larger gap).
var maxCatchUpEvents = 5000

// maxEventAttempts bounds the attempts at an event that keeps failing (catchup.Config.MaxAttempts;
// a variable for tests).
var maxEventAttempts = 10

// catchUpOn hands the room timelines of every sync response of cli to ingestEvent through the
// catch-up (package catchup); a response not fully handled is tried again with its token kept.
// first, when set, runs at every response before that.
func (a *Adapter) catchUpOn(sy *e2ee.Syncer, cli *mautrix.Client, first func()) {
	cu := catchup.New(catchup.Config{Client: cli, Own: cli.UserID, Log: a.log, MaxEvents: maxCatchUpEvents, MaxAttempts: maxEventAttempts,
		Processed: func(ctx context.Context, evt id.EventID) (bool, error) {
			return a.st.IsProcessed(ctx, scopeEvent, string(evt))
		},
		Ingest: a.ingestEvent, Unreachable: a.ServerUnreachable, GiveUp: a.giveUp,
		Down: func(ctx context.Context) bool {
			r, ok := a.pub.(interface{ Ready(context.Context) error })
			return ok && r.Ready(ctx) != nil
		}})
	sy.OnSync(func(ctx context.Context, res *mautrix.RespSync, since string) bool {
		if first != nil {
			first()
		}
		if err := cu.Response(ctx, res, since); err != nil {
			sy.Fail(err)
			return false
		}
		return true
	})
}

// giveUp gives up an event that failed attempts times (catchup.Config.GiveUp): logged at WARN
// under a reference, its sender told in the room with that reference (logged at ERROR when the
// homeserver refuses the notice), counted, and marked handled, so that the room goes on.
func (a *Adapter) giveUp(ctx context.Context, evt *mevent.Event, attempts int, err error) error {
	sum := sha256.Sum256([]byte(evt.ID))
	ref := hex.EncodeToString(sum[:5])
	a.log.Warn("matrix event given up after repeated failures", "room_id", string(evt.RoomID), "event_id", string(evt.ID),
		"sender", string(evt.Sender), "attempts", attempts, "correlation", ref, "error", err)
	if err := a.say(ctx, evt.RoomID, evt.ID, evt.Sender, "failed", bridges.Say(a.lang(), bridges.PhraseNotRelayed, ref)); a.ServerUnreachable(err) {
		return err // told when the homeserver is back
	} else if err != nil { // e.g. the account may not write there: holding the room would not help
		a.log.Error("the sender of a matrix event given up could not be told", "room_id", string(evt.RoomID), "event_id", string(evt.ID),
			"correlation", ref, "error", err)
	}
	a.metrics.inbound.WithLabelValues("failed").Inc()
	return a.markDone(ctx, string(evt.ID))
}
