package matrix

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"maunium.net/go/mautrix/crypto/cryptohelper"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/dendritetest"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// TestAppserviceCatchUpAfterRestart: what a Matrix user sends while the gateway is down (a text,
// an edit, a reaction and more texts, in an unencrypted and in an encrypted room) reaches the bus
// after the restart exactly once and in order, without waiting for the homeserver's transaction
// backoff. The gateway first comes back on an address Dendrite does not know, so no transaction
// can arrive at all (a backoff longer than the test): only the catch-up from the bot's sync can
// deliver. The unencrypted room gets more events than the sync's timeline limit (50), so the
// catch-up fills the gap from /messages; in the encrypted room alice starts a new Megolm session
// during the outage, whose key reaches the gateway's device in the same sync. Then the gateway
// comes back on its registered address, Dendrite's retried transactions bring every event a
// second time, and nothing changes on the bus; a gap too large for the catch-up is left to them.
func TestAppserviceCatchUpAfterRestart(t *testing.T) {
	e := startAppserviceEnv(t)
	alice := newE2EEClient(t, e.hs, "alice", "alicepassword123")
	ghost := e.adapter.ghosts.UserID(bobURI)
	type portal struct {
		id   id.RoomID
		sent []id.EventID // alice's events in the order she sent them
	}
	rooms := []*portal{{id: alice.CreateRoom(t, "", false, false, ghost)}, {id: alice.createEncryptedRoom(t, ghost)}}
	for _, r := range rooms {
		alice.waitJoined(t, r.id, e.adapter.botUserID())
		uri, _ := RoomURIOf("localhost", r.id)
		waitPortal(t, e, uri)
		r.sent = append(r.sent, alice.SendText(t, r.id, "vor der Pause"))
		e.out.wait(t, "the message before the outage", onBus(r.sent[0]))
	}

	registered := e.cfg.Appservice.Listen
	e.stopAdapter(t)
	for i, r := range rooms {
		first := alice.SendText(t, r.id, "während der Pause 1")
		edit := alice.send(t, r.id, &mevent.MessageEventContent{MsgType: mevent.MsgText, Body: "* während der Pause 1 (bearbeitet)",
			NewContent: &mevent.MessageEventContent{MsgType: mevent.MsgText, Body: "während der Pause 1 (bearbeitet)"},
			RelatesTo:  &mevent.RelatesTo{Type: mevent.RelReplace, EventID: first}})
		react := alice.sendType(t, r.id, mevent.EventReaction, &mevent.ReactionEventContent{RelatesTo: mevent.RelatesTo{
			Type: mevent.RelAnnotation, EventID: first, Key: "👍"}})
		r.sent = append(r.sent, first, edit, react)
		more := 2
		if i == 0 {
			more = 60
		} else {
			helper, ok := alice.Crypto.(*cryptohelper.CryptoHelper)
			if !ok {
				t.Fatalf("alice's crypto is %T", alice.Crypto)
			}
			if err := helper.Machine().CryptoStore.RemoveOutboundGroupSession(t.Context(), r.id); err != nil {
				t.Fatal(err)
			}
		}
		for j := range more {
			r.sent = append(r.sent, alice.SendText(t, r.id, fmt.Sprintf("während der Pause %d", j+2)))
		}
	}

	e.cfg.Appservice.Listen = dendritetest.FreeAddr(t)
	back := time.Now()
	e.startAdapter(t)
	all := func(r *portal) func() bool {
		return func() bool {
			return !slices.ContainsFunc(r.sent, func(ev id.EventID) bool { return e.out.find(onBus(ev)) == nil })
		}
	}
	for _, r := range rooms {
		waitFor(t, 60*time.Second, fmt.Sprintf("the %d events of %s on the bus", len(r.sent), r.id), all(r))
	}
	t.Logf("all %d events sent during the outage on the bus %.2f s after the gateway's start, %v transactions answered",
		len(rooms[0].sent)+len(rooms[1].sent)-2, time.Since(back).Seconds(), testutil.ToFloat64(e.adapter.metrics.transactions.WithLabelValues("ok")))
	for _, r := range rooms {
		e.out.checkOnceInOrder(t, r.sent)
	}

	// A second outage with a gap larger than the catch-up takes (80 events: 50 in the sync's
	// timeline, 30 to fill, more than the 20 allowed here): the sync waits (token kept) until the
	// transactions have handled the oldest, then catches up the rest, still once and in order.
	e.stopAdapter(t)
	for j := range 80 {
		rooms[0].sent = append(rooms[0].sent, alice.SendText(t, rooms[0].id, fmt.Sprintf("zweite Pause %d", j+1)))
	}
	defer func(n int) { maxCatchUpEvents = n }(maxCatchUpEvents)
	maxCatchUpEvents = 20
	e.cfg.Appservice.Listen = registered
	e.startAdapter(t)
	waitFor(t, 150*time.Second, "Dendrite retrying its transactions (backoff 2 s doubling to 64 s)", func() bool {
		return testutil.ToFloat64(e.adapter.metrics.transactions.WithLabelValues("ok")) >= 1
	})
	for _, r := range rooms {
		r.sent = append(r.sent, alice.SendText(t, r.id, "nach der Pause"))
		waitFor(t, 60*time.Second, "the messages of the second outage and the one after it", all(r))
		e.out.checkOnceInOrder(t, r.sent)
	}
}

// onBus matches the envelope of the Matrix event ev.
func onBus(ev id.EventID) func(*event.Envelope) bool {
	return func(env *event.Envelope) bool { return env.Origin.Event == event.NativeEventID(ev) }
}

// find returns the first envelope matching f, or nil.
func (o *outbox) find(f func(*event.Envelope) bool) *event.Envelope {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, e := range o.envs {
		if f(e) {
			return e
		}
	}
	return nil
}

// checkOnceInOrder checks that the envelopes of the Matrix events evs are on the bus once each,
// in the order of evs.
func (o *outbox) checkOnceInOrder(t *testing.T, evs []id.EventID) {
	t.Helper()
	index := map[event.NativeEventID]int{}
	for i, ev := range evs {
		index[event.NativeEventID(ev)] = i
	}
	o.mu.Lock()
	var got []int
	for _, env := range o.envs {
		if i, ok := index[env.Origin.Event]; ok {
			got = append(got, i)
		}
	}
	o.mu.Unlock()
	want := make([]int, len(evs))
	for i := range want {
		want[i] = i
	}
	if !slices.Equal(got, want) {
		var b strings.Builder
		for _, i := range got {
			fmt.Fprintf(&b, " %d", i)
		}
		t.Errorf("envelopes of %d events on the bus in the order%s, want each once in the order sent", len(evs), b.String())
	}
}
