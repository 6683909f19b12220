package provider

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// node is one provider instance: its own embedded NATS, SQLite store, certificate and provider.
type node struct {
	domain event.Domain
	st     *store.Store
	bus    *bus.NATS
	p      *Provider
	tp     *protocoltest.Provider
	in     chan *event.Envelope // mimi.in.matrix as the Matrix adapter would see it
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newNode(t testing.TB, n *protocoltest.Network, ca *protocoltest.CA, domain event.Domain) *node {
	t.Helper()
	ctx := context.Background()
	st := storetest.Open(t, storetest.SQLiteConfig(t))
	b, err := bus.Open(ctx, bus.Config{
		Mode:          bus.ModeEmbedded,
		Embedded:      bus.EmbeddedConfig{StoreDir: filepath.Join(t.TempDir(), "nats")},
		AckWait:       2 * time.Second,
		MaxDeliveries: 20,
		Backoff:       []time.Duration{50 * time.Millisecond, 200 * time.Millisecond},
		Partitions:    2,
		ReadyTimeout:  15 * time.Second,
	}, testLogger())
	if err != nil {
		t.Fatalf("bus: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	p, err := New(ctx, Config{Domain: domain, Store: st, Bus: b, Logger: testLogger().With("domain", domain)})
	if err != nil {
		t.Fatal(err)
	}
	tp := protocoltest.NewProvider(t, n, ca, domain, p, protocoltest.Options{Store: st})
	nd := &node{domain: domain, st: st, bus: b, p: p, tp: tp, in: make(chan *event.Envelope, 256)}
	return nd
}

// start begins the provider and a mimi.in consumer standing in for the Matrix adapter.
func (nd *node) start(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	if err := nd.p.Start(ctx, nd.tp.Client); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = nd.p.Close(ctx)
	})
	sub, err := nd.bus.ConsumeIn(ctx, "test-matrix", event.NetworkMatrix, func(_ context.Context, d bus.Delivery) error {
		nd.in <- d.Envelope
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = sub.Stop(ctx)
	})
}

func pair(t testing.TB) (*node, *node) {
	t.Helper()
	n := protocoltest.NewNetwork()
	ca := protocoltest.NewCA(t)
	a := newNode(t, n, ca, "a.example")
	b := newNode(t, n, ca, "b.example")
	a.tp.Partners.Set([]protocol.Partner{b.tp.PartnerEntry(false)})
	b.tp.Partners.Set([]protocol.Partner{a.tp.PartnerEntry(false)})
	a.start(t)
	b.start(t)
	return a, b
}

var seq int

func publishOut(t testing.TB, nd *node, env *event.Envelope) {
	t.Helper()
	seq++
	if env.ID == "" {
		env.ID = event.NewEventID(event.NetworkMatrix, "!room", event.NativeEventID(fmt.Sprintf("$ev%d", seq)))
	}
	env.Origin = event.Origin{Network: event.NetworkMatrix, Room: "!room", Event: event.NativeEventID(env.ID)}
	env.Timestamp = time.Now()
	if err := nd.bus.PublishOut(context.Background(), env); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

func membership(room event.RoomURI, sender event.UserURI, a event.MembershipAction, target event.UserURI) *event.Envelope {
	return &event.Envelope{Kind: event.KindMembership, Room: room, Sender: sender, Membership: &event.Membership{Action: a, Target: target}}
}

func message(t testing.TB, room event.RoomURI, sender event.UserURI, text string) *event.Envelope {
	t.Helper()
	b := content.Builder{SenderURI: string(sender), RoomURI: string(room)}
	m, err := b.New(content.PlainText(text))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return &event.Envelope{Kind: event.KindMessage, Room: room, Sender: sender, Content: raw}
}

// expect waits for an envelope on nd's mimi.in that matches, failing on timeout.
func expect(t testing.TB, nd *node, what string, match func(*event.Envelope) bool) *event.Envelope {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case e := <-nd.in:
			if match(e) {
				return e
			}
		case <-deadline:
			t.Fatalf("%s: no matching envelope on %s's mimi.in", what, nd.domain)
		}
	}
}

// quiet asserts that nothing arrives on nd's mimi.in for d.
func quiet(t testing.TB, nd *node, d time.Duration) {
	t.Helper()
	select {
	case e := <-nd.in:
		t.Fatalf("unexpected envelope on %s's mimi.in: %s from %s", nd.domain, e.Kind, e.Sender)
	case <-time.After(d):
	}
}

func expectText(t testing.TB, nd *node, sent *event.Envelope) {
	t.Helper()
	got := expect(t, nd, "message", func(e *event.Envelope) bool { return e.Kind == event.KindMessage })
	if got.Sender != sent.Sender || got.Room != sent.Room {
		t.Fatalf("got message from %s in %s, want %s in %s", got.Sender, got.Room, sent.Sender, sent.Room)
	}
	if !bytes.Equal(got.Content, sent.Content) {
		t.Fatalf("content differs")
	}
	gm, err := content.Decode(got.Content)
	if err != nil {
		t.Fatalf("decode delivered content: %v", err)
	}
	wm, _ := content.Decode(sent.Content)
	gs, ok1 := gm.Body.Body.(content.SinglePart)
	ws, ok2 := wm.Body.Body.(content.SinglePart)
	if !ok1 || !ok2 || !bytes.Equal(gs.Content, ws.Content) || gm.Salt != wm.Salt {
		t.Fatalf("delivered body %+v, sent %+v", gm.Body, wm.Body)
	}
	id, err := content.ComputeID(content.DefaultIDVersion, sent.Content, string(sent.Sender), string(sent.Room))
	if err != nil || !bytes.Equal(got.MessageID, id[:]) {
		t.Fatalf("message ID %x, want %x (%v)", got.MessageID, id, err)
	}
}

// waitFor polls f until it returns nil.
func waitFor(t testing.TB, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTwoProviders(t *testing.T) {
	ctx := context.Background()
	a, b := pair(t)
	alice := event.NewUserURI(a.domain, "alice")
	bob := event.NewUserURI(b.domain, "bob")
	bob2 := event.NewUserURI(b.domain, "bob2")
	for _, u := range []event.UserURI{bob, bob2} {
		if err := b.p.EnsureUser(ctx, u, event.NetworkMatrix); err != nil {
			t.Fatal(err)
		}
	}
	room := a.p.NewRoomID()

	// Alice (on the hub) invites Bob: room creation, keyMaterial at B, commit + Welcome, fanout.
	publishOut(t, a, membership(room, alice, event.MembershipInvite, bob))
	pr := expect(t, b, "portal request", func(e *event.Envelope) bool { return e.Kind == event.KindPortalRequest })
	if pr.Room != room || pr.Membership == nil || pr.Membership.Target != bob {
		t.Fatalf("portal request %+v", pr)
	}

	// Messages both ways.
	m1 := message(t, room, alice, "hello Bob")
	publishOut(t, a, m1)
	expectText(t, b, m1)
	m2 := message(t, room, bob, "hello Alice")
	publishOut(t, b, m2)
	expectText(t, a, m2)
	for i := range 5 {
		m := message(t, room, bob, fmt.Sprintf("burst %d", i))
		publishOut(t, b, m)
		expectText(t, a, m)
	}

	// Bob adds a second user of B through the hub (/update with commit + Welcome).
	publishOut(t, b, membership(room, bob, event.MembershipInvite, bob2))
	pr = expect(t, b, "portal request for bob2", func(e *event.Envelope) bool { return e.Kind == event.KindPortalRequest })
	if pr.Membership.Target != bob2 {
		t.Fatalf("portal request for %s", pr.Membership.Target)
	}
	m3 := message(t, room, alice, "welcome bob2")
	publishOut(t, a, m3)
	expectText(t, b, m3) // decrypted once for the room: one envelope for B's Matrix adapter
	m4 := message(t, room, bob2, "hi from bob2")
	publishOut(t, b, m4)
	expectText(t, a, m4)
	quiet(t, b, 300*time.Millisecond)

	// bob2 leaves: Bob's client commits the removal at the hub.
	publishOut(t, b, membership(room, bob2, event.MembershipLeave, bob2))
	waitFor(t, "bob2 leaves", func() error {
		_, ok, err := roleOf(ctx, a.st, room, bob2)
		if err != nil || ok {
			return fmt.Errorf("bob2 still a participant (%v)", err)
		}
		if _, err := loadClient(ctx, b.st, room, bob2); err == nil {
			return fmt.Errorf("bob2 still has a client at B")
		}
		return nil
	})
	m5 := message(t, room, alice, "after the leave")
	publishOut(t, a, m5)
	expectText(t, b, m5)

	// Alice bans Bob; a message Bob's provider submits afterwards is refused by the hub.
	before, err := loadClient(ctx, b.st, room, bob)
	if err != nil {
		t.Fatal(err)
	}
	publishOut(t, a, membership(room, alice, event.MembershipBan, bob))
	waitFor(t, "bob banned", func() error {
		r, ok, err := roleOf(ctx, a.st, room, bob)
		if err != nil || !ok || r != RoleBanned {
			return fmt.Errorf("bob's role %d %v %v", r, ok, err)
		}
		return nil
	})
	msg, err := before.Group.Encrypt(m2.Content, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := b.tp.Client.SubmitMessage(ctx, room, &protocol.SubmitMessageRequest{Protocol: protocol.ProtocolMLS10, AppMessage: msg, SendingURI: protocol.IdentifierURI(bob)})
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != protocol.SubmitNotAllowed {
		t.Fatalf("banned user's message: status %d, want notAllowed", resp.StatusCode)
	}
	waitFor(t, "bob's client removed at B", func() error {
		if _, err := loadClient(ctx, b.st, room, bob); err == nil {
			return fmt.Errorf("still there")
		}
		return nil
	})
	quiet(t, a, 300*time.Millisecond)
}
