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
	"github.com/mimi-gateway/mimi-gateway/core/testwait"
)

// node is one provider instance: its own embedded NATS, SQLite store, certificate and provider.
// stop and open restart it on the same data (store file and JetStream directory).
type node struct {
	domain event.Domain
	stCfg  store.Config
	busCfg bus.Config
	st     *store.Store
	bus    *bus.NATS
	p      *Provider
	tp     *protocoltest.Provider
	sub    bus.Subscription
	in     chan delivered // mimi.in.matrix as the Matrix adapter would see it
	// conf, if set, adjusts the provider's configuration whenever it opens.
	conf func(*Config)
}

type delivered struct {
	env *event.Envelope
	seq uint64
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// newNode opens a provider node; opts adjust its bus configuration before it opens.
func newNode(t testing.TB, n *protocoltest.Network, ca *protocoltest.CA, domain event.Domain, stCfg store.Config, opts ...func(*bus.Config)) *node {
	t.Helper()
	return newNodeConf(t, n, ca, domain, stCfg, nil, opts...)
}

// newNodeConf is newNode with conf (if set) adjusting the provider's configuration.
func newNodeConf(t testing.TB, n *protocoltest.Network, ca *protocoltest.CA, domain event.Domain, stCfg store.Config, conf func(*Config), opts ...func(*bus.Config)) *node {
	t.Helper()
	nd := &node{domain: domain, stCfg: stCfg, in: make(chan delivered, 1024), conf: conf,
		busCfg: bus.Config{
			Mode:          bus.ModeEmbedded,
			Embedded:      bus.EmbeddedConfig{StoreDir: filepath.Join(t.TempDir(), "nats")},
			AckWait:       2 * time.Second,
			MaxDeliveries: 50,
			Backoff:       []time.Duration{50 * time.Millisecond, 200 * time.Millisecond},
			Partitions:    2,
			ReadyTimeout:  15 * time.Second,
		}}
	for _, o := range opts {
		o(&nd.busCfg)
	}
	nd.open(t)
	nd.tp = protocoltest.NewProvider(t, n, ca, domain, nd.p, protocoltest.Options{Store: nd.st})
	t.Cleanup(func() { nd.stop(t) })
	return nd
}

// open opens the store, the bus and the provider (not started).
func (nd *node) open(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, nd.stCfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := bus.Open(ctx, nd.busCfg, testLogger())
	if err != nil {
		t.Fatalf("bus: %v", err)
	}
	cfg := Config{Domain: nd.domain, Store: st, Bus: b, Logger: testLogger().With("domain", nd.domain)}
	if nd.conf != nil {
		nd.conf(&cfg)
	}
	p, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	nd.st, nd.bus, nd.p = st, b, p
}

// start begins the provider and a mimi.in consumer standing in for the Matrix adapter.
func (nd *node) start(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	if err := nd.p.Start(ctx, nd.tp.Client); err != nil {
		t.Fatal(err)
	}
	sub, err := nd.bus.ConsumeIn(ctx, "test-matrix", event.NetworkMatrix, func(_ context.Context, d bus.Delivery) error {
		nd.in <- delivered{env: d.Envelope, seq: d.StreamSeq}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	nd.sub = sub
}

// stop shuts the node down in the gateway's order: server, consumers, provider, bus, store.
func (nd *node) stop(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if nd.tp != nil && nd.tp.Server != nil {
		_ = nd.tp.Server.Shutdown(ctx)
	}
	if nd.sub != nil {
		_ = nd.sub.Stop(ctx)
		nd.sub = nil
	}

	if nd.p != nil {
		_ = nd.p.Close(ctx)
		nd.p = nil
	}
	if nd.bus != nil {
		_ = nd.bus.Close(ctx)
		nd.bus = nil
	}
	if nd.st != nil {
		_ = nd.st.Close()
		nd.st = nil
	}
}

// restart stops the node and brings it back on the same data.
func (nd *node) restart(t testing.TB) {
	t.Helper()
	nd.stop(t)
	nd.open(t)
	nd.tp.Handler, nd.tp.Store = nd.p, nd.st
	nd.tp.Start(t)
	nd.start(t)
}

func pair(t testing.TB) (*node, *node) {
	return pairOn(t, storetest.SQLiteConfig)
}

// pairOn is pair with stores from cfg (SQLite or PostgreSQL); opts adjust both buses.
func pairOn(t testing.TB, cfg func(testing.TB) store.Config, opts ...func(*bus.Config)) (*node, *node) {
	t.Helper()
	return pairConf(t, cfg, nil, nil, opts...)
}

// pairConf is pairOn with confA and confB (if set) adjusting a's and b's provider configuration.
func pairConf(t testing.TB, cfg func(testing.TB) store.Config, confA, confB func(*Config), opts ...func(*bus.Config)) (*node, *node) {
	t.Helper()
	n := protocoltest.NewNetwork()
	ca := protocoltest.NewCA(t)
	a := newNodeConf(t, n, ca, "a.example", cfg(t), confA, opts...)
	b := newNodeConf(t, n, ca, "b.example", cfg(t), confB, opts...)
	a.tp.Partners.Set([]protocol.Partner{b.tp.PartnerEntry(false)})
	b.tp.Partners.Set([]protocol.Partner{a.tp.PartnerEntry(false)})
	a.start(t)
	b.start(t)
	return a, b
}

// invited has Alice (on a, the hub) create a room and invite Bob (a user of b), and waits for
// b's portal request.
func invited(t testing.TB, a, b *node) (alice, bob event.UserURI, room event.RoomURI) {
	t.Helper()
	alice, bob = event.NewUserURI(a.domain, "alice"), event.NewUserURI(b.domain, "bob")
	if err := b.p.EnsureUser(context.Background(), bob, event.NetworkMatrix); err != nil {
		t.Fatal(err)
	}
	room = a.p.NewRoomID()
	publishOut(t, a, membership(room, alice, event.MembershipInvite, bob))
	pr := expect(t, b, "portal request", func(e *event.Envelope) bool { return e.Kind == event.KindPortalRequest })
	// The group reaches bob from alice, whose commit added him: his invitation names her.
	if pr.Sender != alice || pr.Membership == nil || pr.Membership.Target != bob || pr.Membership.Direct {
		t.Fatalf("bob's portal request: from %s, %+v; want from %s for %s, not direct", pr.Sender, pr.Membership, alice, bob)
	}
	return alice, bob, room
}

var seq int

func publishOut(t testing.TB, nd *node, env *event.Envelope) {
	t.Helper()
	if err := publishEnvelope(nd, env); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// publishEnvelope publishes env on nd's mimi.out as the Matrix adapter would (an ID if it has
// none, origin and timestamp); it may run on any goroutine, one at a time.
func publishEnvelope(nd *node, env *event.Envelope) error {
	seq++
	if env.ID == "" {
		env.ID = event.NewEventID(event.NetworkMatrix, "!room", event.NativeEventID(fmt.Sprintf("$ev%d", seq)))
	}
	env.Origin = event.Origin{Network: event.NetworkMatrix, Room: "!room", Event: event.NativeEventID(env.ID)}
	env.Timestamp = time.Now()
	return nd.bus.PublishOut(context.Background(), env)
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
		case d := <-nd.in:
			if match(d.env) {
				return d.env
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
	case d := <-nd.in:
		t.Fatalf("unexpected envelope on %s's mimi.in: %s from %s", nd.domain, d.env.Kind, d.env.Sender)
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

// waitFor polls f until it returns nil, for 20 s scaled for the machine (testwait.Scale).
func waitFor(t testing.TB, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(testwait.Scale(20 * time.Second))
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

	// The room advertises application/mimi-content: application data is ApplicationFraming.
	// (The portal request is published before the joined client is stored: wait for it.)
	waitFor(t, "bob's client uses ApplicationFraming", func() error {
		c, err := loadClient(ctx, b.st, room, bob)
		if err != nil {
			return err
		}
		if !framed(c.Group) {
			return fmt.Errorf("not framed")
		}
		return nil
	})

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
		_, ok, err := dbOf(a.st).roleOf(ctx, room, bob2)
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
		r, ok, err := dbOf(a.st).roleOf(ctx, room, bob)
		if err != nil || !ok || r != bannedRole {
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
	expect(t, b, "bob's ban on B's bus", func(e *event.Envelope) bool {
		return e.Kind == event.KindMembership && e.Membership.Action == event.MembershipBan && e.Membership.Target == bob
	})
	quiet(t, a, 300*time.Millisecond)

	// A banned user cannot be added back: the hub refuses the commit (the room's epoch stays).
	rr, err := dbOf(a.st).loadRoom(ctx, room)
	if err != nil {
		t.Fatal(err)
	}
	publishOut(t, a, membership(room, alice, event.MembershipInvite, bob))
	quiet(t, b, 2*time.Second)
	if r, _, err := dbOf(a.st).roleOf(ctx, room, bob); err != nil || r != bannedRole {
		t.Fatalf("bob's role after a re-invite: %d (%v)", r, err)
	}
	if rr2, err := dbOf(a.st).loadRoom(ctx, room); err != nil || rr2.Epoch != rr.Epoch {
		t.Fatalf("room epoch %d → %+v (%v): the re-invite was accepted", rr.Epoch, rr2, err)
	}
	// B re-checked every commit the hub sequenced and agreed (leave by SelfRemove included).
	if n := b.p.policyRefusals.Load(); n != 0 {
		t.Fatalf("B's room-policy check refused %d commits the hub sequenced", n)
	}
}

// TestFollowerRestart restarts provider B (stop and reopen on the same store file and JetStream
// directory) in the middle of a stream of messages from A: every message reaches B's bus exactly
// once, and B keeps sending afterwards.
func TestFollowerRestart(t *testing.T) {
	a, b := pair(t)
	alice, bob, room := invited(t, a, b)

	const total = 30
	for i := range total {
		if i == total/3 {
			// Let some arrive, then restart B while the rest are still being sent.
			b.restart(t)
		}
		m := message(t, room, alice, fmt.Sprintf("stream %d", i))
		publishOut(t, a, m)
	}
	seen := map[event.EventID]bool{}   // envelope IDs on B's mimi.in
	seqs := map[uint64]event.EventID{} // stream sequence → envelope
	got := 0
	deadline := time.After(60 * time.Second)
	for got < total {
		select {
		case d := <-b.in:
			if d.env.Kind != event.KindMessage {
				continue
			}
			if prev, ok := seqs[d.seq]; ok && prev == d.env.ID {
				continue // the test consumer's own redelivery of one stored message
			}
			seqs[d.seq] = d.env.ID
			if seen[d.env.ID] {
				t.Fatalf("message %s stored twice on B's bus", d.env.ID)
			}
			seen[d.env.ID] = true
			got++
		case <-deadline:
			t.Fatalf("only %d of %d messages reached B's bus", got, total)
		}
	}
	quiet(t, b, 500*time.Millisecond)
	m := message(t, room, bob, "back again")
	publishOut(t, b, m)
	expectText(t, a, m)
}

// TestFollowerRecoversByExternalJoin makes B miss an epoch (its listener is down while Alice
// adds Carol, and the hub's outbox drops the undelivered fanout, as after its expiry). When Bob
// next writes, the hub answers epochTooOld; B fetches the GroupInfo (/groupInfo), rejoins by
// external commit (/update) and resends.
func TestFollowerRecoversByExternalJoin(t *testing.T) {
	a, b := pair(t)
	alice, bob, room := invited(t, a, b)
	carol := event.NewUserURI(a.domain, "carol")

	before := missFanout(t, a, b, room, bob, func() { addedBy(t, a, a, room, alice, carol) })
	rejoinsToSend(t, b, a, room, bob, before)
	r := message(t, room, alice, "yes: carol joined")
	publishOut(t, a, r)
	expectText(t, b, r)
}

// missFanout has follower's u miss the epoch of the commit that commit makes: follower's server is
// down meanwhile and hub's fanout to it is dropped. It returns u's client as it stays behind.
func missFanout(t *testing.T, hub, follower *node, room event.RoomURI, u event.UserURI, commit func()) *clientState {
	t.Helper()
	ctx := context.Background()
	var before *clientState
	waitFor(t, fmt.Sprintf("%s's client", u), func() error {
		var err error
		before, err = loadClient(ctx, follower.st, room, u)
		return err
	})
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := follower.tp.Server.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	commit()
	// The hub lists the change when its transaction commits; the fanout may be queued after
	// that: drop it only once it is queued, so that it cannot be queued after the drop.
	waitFor(t, fmt.Sprintf("the hub's fanout to %s queued", follower.domain), func() error {
		var n int
		if err := hub.st.QueryRowContext(ctx, `SELECT COUNT(*) FROM protocol_outbox WHERE follower = ?`, string(follower.domain)).Scan(&n); err != nil || n == 0 {
			return fmt.Errorf("not yet (%d rows, %v)", n, err)
		}
		return nil
	})
	if _, err := hub.st.ExecContext(ctx, `DELETE FROM protocol_outbox WHERE follower = ?`, string(follower.domain)); err != nil {
		t.Fatal(err)
	}
	follower.tp.Start(t)
	if c, err := loadClient(ctx, follower.st, room, u); err != nil || c.Group.Epoch() != before.Group.Epoch() {
		t.Fatalf("%s did not miss the epoch (%v)", u, err)
	}
	return before
}

// addedBy has inviter (a user of from) invite target and waits until the hub lists target.
func addedBy(t *testing.T, from, hub *node, room event.RoomURI, inviter, target event.UserURI) {
	t.Helper()
	publishOut(t, from, membership(room, inviter, event.MembershipInvite, target))
	waitFor(t, fmt.Sprintf("%s added", target), func() error {
		if _, ok, err := dbOf(hub.st).roleOf(context.Background(), room, target); err != nil || !ok {
			return fmt.Errorf("not yet (%v)", err)
		}
		return nil
	})
}

// rejoinsToSend has u (a user of nd, behind since before) send a message: the hub refuses it as
// too old, nd rejoins by external commit, and the message reaches obs.
func rejoinsToSend(t *testing.T, nd, obs *node, room event.RoomURI, u event.UserURI, before *clientState) {
	t.Helper()
	m := message(t, room, u, "did I miss something?")
	publishOut(t, nd, m)
	expectText(t, obs, m)
	after, err := loadClient(context.Background(), nd.st, room, u)
	if err != nil {
		t.Fatal(err)
	}
	if after.Group.Epoch() <= before.Group.Epoch()+1 {
		t.Fatalf("%s's epoch %d → %d: no external commit", u, before.Group.Epoch(), after.Group.Epoch())
	}
}

// TestTwoProvidersPostgres runs room creation, the add of B's user and messages both ways with
// both providers on PostgreSQL.
func TestTwoProvidersPostgres(t *testing.T) {
	a, b := pairOn(t, storetest.PostgresConfig)
	alice, bob, room := invited(t, a, b)
	for i := range 3 {
		m := message(t, room, alice, fmt.Sprintf("to bob %d", i))
		publishOut(t, a, m)
		expectText(t, b, m)
		r := message(t, room, bob, fmt.Sprintf("to alice %d", i))
		publishOut(t, b, r)
		expectText(t, a, r)
	}
}
