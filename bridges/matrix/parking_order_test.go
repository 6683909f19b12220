package matrix

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/crypto/olm"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// TestParkedEventHoldsItsRoom: a room's events reach the bus in the room's order even when one
// of them waits for its room key (after a restart the gateway's device may get a key after the
// event, e.g. a sender's new Megolm session): the later events of the room, encrypted or not and
// in this or a later transaction, wait behind it and follow it once the key arrives. Without
// that, a message typed after it was published first. An event whose key never comes holds its
// room only until UnreadableNoticeAfter.
func TestParkedEventHoldsItsRoom(t *testing.T) {
	e := startAppserviceEnv(t, func(c *Config) {
		c.DecryptWait = 10 * time.Millisecond
		c.UnreadableNoticeAfter = 2 * time.Second
	})
	ctx := t.Context()
	room := id.RoomID("!order:localhost")
	uri, err := RoomURIOf("localhost", room)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.adapter.portals.Put(ctx, uri, room, false); err != nil {
		t.Fatal(err)
	}
	const senderKey = id.SenderKey("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	ogs, err := olm.NewOutboundGroupSession()
	if err != nil {
		t.Fatal(err)
	}
	key := ogs.Key() // exported before the first message, as a client shares it
	encrypted := func(ogs olm.OutboundGroupSession, evID, body string) string {
		t.Helper()
		ct, err := ogs.Encrypt([]byte(`{"type":"m.room.message","content":{"msgtype":"m.text","body":"` + body + `"},"room_id":"` + string(room) + `"}`))
		if err != nil {
			t.Fatal(err)
		}
		return `{"type":"m.room.encrypted","event_id":"` + evID + `","room_id":"` + string(room) + `","sender":"@carol:localhost","origin_server_ts":1700000000000,` +
			`"content":{"algorithm":"m.megolm.v1.aes-sha2","ciphertext":"` + string(ct) + `","session_id":"` + string(ogs.ID()) +
			`","sender_key":"` + string(senderKey) + `","device_id":"DEV"}}`
	}
	plain := func(evID, body string) string {
		return `{"type":"m.room.message","event_id":"` + evID + `","room_id":"` + string(room) + `","sender":"@carol:localhost","origin_server_ts":1700000000000,` +
			`"content":{"msgtype":"m.text","body":"` + body + `"}}`
	}
	txn := func(name string, events ...string) {
		t.Helper()
		if code := putTransaction(t, e, name, `{"events":[`+strings.Join(events, ",")+`]}`); code != http.StatusOK {
			t.Fatalf("transaction %s answered %d", name, code)
		}
	}
	published := func(evID string) bool {
		done, err := e.st.IsProcessed(ctx, scopeEvent, evID)
		if err != nil {
			t.Fatal(err)
		}
		return done
	}
	parked := func() int {
		var n int
		if err := e.st.QueryRowContext(ctx, `SELECT COUNT(*) FROM matrix_pending WHERE mx_room = ?`, string(room)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// inOrder waits until the bus has the envelopes of evIDs and checks they came in this order.
	inOrder := func(evIDs ...string) {
		t.Helper()
		pos := map[string]int{}
		waitFor(t, 30*time.Second, fmt.Sprintf("envelopes of %v on the bus", evIDs), func() bool {
			e.adapter.parking.Kick()
			e.out.mu.Lock()
			defer e.out.mu.Unlock()
			for i, env := range e.out.envs {
				pos[string(env.Origin.Event)] = i
			}
			for _, id := range evIDs {
				if _, ok := pos[id]; !ok {
					return false
				}
			}
			return true
		})
		for i := 1; i < len(evIDs); i++ {
			if pos[evIDs[i]] < pos[evIDs[i-1]] {
				t.Errorf("%s reached the bus before %s, which came before it in the room", evIDs[i], evIDs[i-1])
			}
		}
		for _, id := range evIDs {
			if n := e.out.count(event.EventID(envelopeOf(t, e, id))); n != 1 {
				t.Errorf("%s on the bus %d times, want once", id, n)
			}
		}
	}

	// The first event's key has not arrived: it waits, and so do the room's later events, the
	// one of a later transaction too.
	txn("order-1", encrypted(ogs, "$first", "first"), plain("$second", "second"), encrypted(ogs, "$third", "third"))
	txn("order-2", plain("$fourth", "fourth"))
	for _, id := range []string{"$first", "$second", "$third", "$fourth"} {
		if published(id) {
			t.Errorf("%s was published while $first waits for its room key", id)
		}
	}
	if n := parked(); n != 4 {
		t.Errorf("%d events of the room parked, want 4", n)
	}

	// The key arrives: all four follow, in the room's order.
	igs, err := crypto.NewInboundGroupSession(senderKey, "", room, key, 0, 0, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.adapter.crypto.Machine().CryptoStore.PutGroupSession(ctx, igs); err != nil {
		t.Fatal(err)
	}
	inOrder("$first", "$second", "$third", "$fourth")
	// An event's row goes once it is published, a moment after its envelope is on the bus.
	waitFor(t, 10*time.Second, "no event parked after their key arrived", func() bool { return parked() == 0 })

	// A key that never comes holds the room only until UnreadableNoticeAfter: then the events
	// behind it go on, in order.
	lost, err := olm.NewOutboundGroupSession()
	if err != nil {
		t.Fatal(err)
	}
	txn("order-3", encrypted(lost, "$lost", "lost"), plain("$fifth", "fifth"), plain("$sixth", "sixth"))
	if published("$fifth") || published("$sixth") {
		t.Error("events behind an event without its key were published at once")
	}
	inOrder("$fifth", "$sixth")
	if published("$lost") {
		t.Error("the event without its key was published")
	}
	// The room is released once $sixth's row is gone, a moment after its envelope is on the bus.
	waitFor(t, 10*time.Second, "the room no longer held", func() bool {
		held, err := e.adapter.parking.Holds(ctx, room)
		return err == nil && !held
	})
	txn("order-4", plain("$seventh", "seventh"))
	if !published("$seventh") {
		t.Error("an event of the room still waits behind an event that has been unreadable for UnreadableNoticeAfter")
	}
}

// envelopeOf returns the envelope ID the adapter published for Matrix event evID.
func envelopeOf(t *testing.T, e *asEnv, evID string) string {
	t.Helper()
	e.out.mu.Lock()
	defer e.out.mu.Unlock()
	for _, env := range e.out.envs {
		if string(env.Origin.Event) == evID {
			return string(env.ID)
		}
	}
	return ""
}
