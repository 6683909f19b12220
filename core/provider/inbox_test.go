package provider

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// spread makes n messages from sender, round-robin over rooms, and returns them in sending order
// with each room's contents in that order.
func spread(t testing.TB, rooms []event.RoomURI, sender event.UserURI, n int) ([]*event.Envelope, map[event.RoomURI][][]byte) {
	t.Helper()
	msgs := make([]*event.Envelope, n)
	want := make(map[event.RoomURI][][]byte, len(rooms))
	for i := range msgs {
		r := rooms[i%len(rooms)]
		msgs[i] = message(t, r, sender, fmt.Sprintf("message %d", i))
		want[r] = append(want[r], msgs[i].Content)
	}
	return msgs, want
}

// expectInOrder waits for every message of want on nd's mimi.in, failing if a room's arrive out
// of the order in want.
func expectInOrder(t testing.TB, nd *node, want map[event.RoomURI][][]byte) {
	t.Helper()
	n := 0
	for _, w := range want {
		n += len(w)
	}
	for range n {
		got := expect(t, nd, "message", func(e *event.Envelope) bool { return e.Kind == event.KindMessage })
		w := want[got.Room]
		if len(w) == 0 || !bytes.Equal(got.Content, w[0]) {
			t.Fatalf("room %s: message out of order or unexpected on %s's mimi.in", got.Room, nd.domain)
		}
		want[got.Room] = w[1:]
	}
}

// TestInboxRoomsInOrder sends messages spread over several rooms in both directions at once:
// each room's messages arrive in the order sent (the mimi.out partitions run rooms concurrently).
func TestInboxRoomsInOrder(t *testing.T) {
	a, b := pair(t)
	rooms := make([]event.RoomURI, 6)
	var alice, bob event.UserURI
	for i := range rooms {
		alice, bob, rooms[i] = invited(t, a, b)
	}
	toB, wantB := spread(t, rooms, alice, 60)
	toA, wantA := spread(t, rooms, bob, 60)
	for i := range toB {
		publishOut(t, a, toB[i])
		publishOut(t, b, toA[i])
	}
	expectInOrder(t, b, wantB)
	expectInOrder(t, a, wantA)
}
