package provider

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

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

// TestDesignatedReader checks that application messages are read by one local client per room:
// the one with the lowest user URI (Bob at B), and for its own messages the next one (Bob2).
// No other local client's state changes, and every message is delivered once. At A, where
// Alice is the only local user, her own messages are not read at all.
func TestDesignatedReader(t *testing.T) {
	ctx := context.Background()
	a, b := pair(t)
	alice, bob, room := invited(t, a, b)
	bob2, bob3 := event.NewUserURI(b.domain, "bob2"), event.NewUserURI(b.domain, "bob3")
	// Bob3 is on XMPP, so that B's XMPP adapter needs Bob's messages: B reads them (with Bob2).
	for u, n := range map[event.UserURI]event.Network{bob2: event.NetworkMatrix, bob3: event.NetworkXMPP} {
		if err := b.p.EnsureUser(ctx, u, n); err != nil {
			t.Fatal(err)
		}
	}
	waitClients(t, b, room, 1)
	unlock := a.p.lockRoom(room)
	err := a.p.commitLocal(ctx, room, alice, &localCommit{add: []event.UserURI{bob2, bob3}}, "")
	unlock()
	if err != nil {
		t.Fatal(err)
	}
	waitClients(t, b, room, 3)
	waitFor(t, "B's inbox applied", func() error {
		if b.p.inboxPending(ctx, room) {
			return fmt.Errorf("inbox rows left")
		}
		return nil
	})
	versions := func() map[event.UserURI]int64 {
		t.Helper()
		out := map[event.UserURI]int64{}
		for _, u := range []event.UserURI{bob, bob2, bob3} {
			c, err := loadClient(ctx, b.st, room, u)
			if err != nil {
				t.Fatal(err)
			}
			out[u] = c.Version
		}
		return out
	}
	v0 := versions()
	for i := range 3 {
		m := message(t, room, alice, fmt.Sprintf("to B %d", i))
		publishOut(t, a, m)
		expectText(t, b, m)
	}
	quiet(t, b, 300*time.Millisecond)
	v1 := versions()
	if v1[bob] != v0[bob]+3 || v1[bob2] != v0[bob2] || v1[bob3] != v0[bob3] {
		t.Fatalf("versions after Alice's messages %v, before %v: only Bob's client should read", v1, v0)
	}
	for i := range 2 {
		m := message(t, room, bob, fmt.Sprintf("from Bob %d", i))
		publishOut(t, b, m)
		expectText(t, a, m)
	}
	waitFor(t, "Bob2 read Bob's messages", func() error {
		if v := versions(); v[bob2] != v1[bob2]+2 {
			return fmt.Errorf("versions %v", v)
		}
		return nil
	})
	quiet(t, b, 300*time.Millisecond) // Bob's adapter sent them: nothing back on B's mimi.in
	if v := versions(); v[bob] != v1[bob]+2 || v[bob3] != v0[bob3] {
		t.Fatalf("versions after Bob's messages %v, before %v", v, v1)
	}
	ac, err := loadClient(ctx, a.st, room, alice)
	if err != nil {
		t.Fatal(err)
	}
	m := message(t, room, alice, "only B needs this")
	publishOut(t, a, m)
	expectText(t, b, m)
	waitFor(t, "A's inbox empty", func() error {
		if a.p.inboxPending(ctx, room) {
			return fmt.Errorf("rows left")
		}
		return nil
	})
	if after, err := loadClient(ctx, a.st, room, alice); err != nil || after.Version != ac.Version+1 {
		t.Fatalf("Alice's client at version %d after sending once, was %d (%v)", after.Version, ac.Version, err)
	}
}
