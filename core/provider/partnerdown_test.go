package provider

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// recoveryBound is the generous bound on how long delivery may take after a partner is back
// (the outbox and the waiting handlers pause at most waitMax between attempts; the machine may
// be loaded).
const recoveryBound = 30 * time.Second

// TestPartnerDownRecovery: messages to a partner that is down wait (in the hub's outbox, or in
// the follower's handler), their senders are told after UnreachableNotice, and when the
// partner is back they are delivered in order within moments, and the senders are told again.
func TestPartnerDownRecovery(t *testing.T) {
	logsA, logsB := &logBuffer{}, &logBuffer{}
	quick := func(logs *logBuffer) func(*Config) {
		return func(c *Config) {
			observed(logs, prometheus.NewRegistry())(c)
			c.UnreachableNotice = time.Second
		}
	}
	a, b := pairConf(t, storetest.SQLiteConfig, quick(logsA), quick(logsB))
	alice, bob, room := invited(t, a, b)

	// Hub → follower: b is down; alice's messages wait in a's outbox.
	b.tp.Stop(t)
	sent := publishMessages(t, a, room, alice, 5, "while b is down")
	n := expectNotice(t, a, "alice told that b does not answer", func(e *event.Envelope) bool {
		return e.Notice.Code == event.NoticePartnerUnreachable && e.Room == room
	})
	checkNotice(t, n, alice, logsA)
	if n.Notice.Partner != b.domain || n.Notice.Reason != "unreachable" {
		t.Fatalf("notice = %+v", n.Notice)
	}
	b.tp.Start(t)
	back := time.Now()
	// b speaks first (bob's message to the hub): a hears b again and retries its queue at once.
	hi := message(t, room, bob, "I am back")
	publishOut(t, b, hi)
	expectText(t, b, sent[0])
	delay := time.Since(back)
	t.Logf("hub → follower: first queued message delivered %v after the follower was back", delay.Round(time.Millisecond))
	if delay > recoveryBound {
		t.Errorf("delivery resumed %v after the follower was back", delay)
	}
	for _, m := range sent[1:] {
		expectText(t, b, m)
	}
	// Bob's message and the notice that b answers again reach alice in either order.
	var gotHi bool
	n = nil
	for !gotHi || n == nil {
		e := expect(t, a, "bob's message and the notice that b answers again", func(e *event.Envelope) bool {
			return e.Kind == event.KindMessage || e.Kind == event.KindNotice && e.Notice.Code == event.NoticePartnerReachable
		})
		if e.Kind == event.KindMessage {
			gotHi = bytes.Equal(e.Content, hi.Content)
		} else {
			n = e
		}
	}
	checkNotice(t, n, alice, logsA)
	if n.Room != room || n.Notice.Partner != b.domain {
		t.Fatalf("notice %+v in %s", n.Notice, n.Room)
	}

	// Follower → hub: a is down; bob's messages wait in b's handler, which keeps their order.
	a.tp.Stop(t)
	sent = publishMessages(t, b, room, bob, 3, "while a is down")
	n = expectNotice(t, b, "bob told that a does not answer", func(e *event.Envelope) bool {
		return e.Notice.Code == event.NoticePartnerUnreachable && e.Room == room
	})
	checkNotice(t, n, bob, logsB)
	if n.Notice.Partner != a.domain || n.Notice.Event != sent[0].ID || n.Notice.Native != sent[0].Origin.Event {
		t.Fatalf("notice = %+v, want it about bob's first waiting message", n.Notice)
	}
	a.tp.Start(t)
	back = time.Now()
	expectText(t, a, sent[0])
	delay = time.Since(back)
	t.Logf("follower → hub: first waiting message delivered %v after the hub was back", delay.Round(time.Millisecond))
	if delay > recoveryBound {
		t.Errorf("delivery resumed %v after the hub was back", delay)
	}
	for _, m := range sent[1:] {
		expectText(t, a, m)
	}
	n = expectNotice(t, b, "bob told that a answers again", func(e *event.Envelope) bool {
		return e.Notice.Code == event.NoticePartnerReachable && e.Room == room
	})
	checkNotice(t, n, bob, logsB)
}

// publishMessages publishes n messages of sender in room on nd's mimi.out ("<text> 0", …) and
// returns them in order.
func publishMessages(t *testing.T, nd *node, room event.RoomURI, sender event.UserURI, n int, text string) []*event.Envelope {
	t.Helper()
	var sent []*event.Envelope
	for i := range n {
		m := message(t, room, sender, fmt.Sprintf("%s %d", text, i))
		publishOut(t, nd, m)
		sent = append(sent, m)
	}
	return sent
}

// shiftClock is a clock that can be moved forward, and stopped (from then on it moves only by
// add).
type shiftClock struct{ offset, stopped atomic.Int64 }

func (c *shiftClock) now() time.Time {
	base := time.Now()
	if s := c.stopped.Load(); s != 0 {
		base = time.Unix(0, s)
	}
	return base.Add(time.Duration(c.offset.Load()))
}

func (c *shiftClock) add(d time.Duration) { c.offset.Add(int64(d)) }

// stop stops the clock at the current wall-clock time.
func (c *shiftClock) stop() { c.stopped.Store(time.Now().UnixNano()) }

// TestNoticeUndelivered: a message parked for a hub that stays down is, after parkExpire, told
// to its sender as undelivered and dropped; the room's next message goes out.
func TestNoticeUndelivered(t *testing.T) {
	logs, clk := &logBuffer{}, &shiftClock{}
	a, b := pairConf(t, storetest.SQLiteConfig, nil, func(c *Config) {
		observed(logs, prometheus.NewRegistry())(c)
		c.Now = clk.now
	})
	_, bob, room := invited(t, a, b)
	a.tp.Stop(t)
	m := message(t, room, bob, "nobody will read this")
	publishOut(t, b, m)
	waitFor(t, "the message parked", func() error {
		if _, parked, err := b.p.db().parkedPartner(t.Context(), room); err != nil || !parked {
			return fmt.Errorf("not parked (%v)", err)
		}
		return nil
	})
	clk.add(parkExpire + time.Hour)
	n := expectNotice(t, b, "bob told his message was not delivered", func(e *event.Envelope) bool {
		return e.Notice.Code == event.NoticeUndelivered
	})
	checkNotice(t, n, bob, logs)
	if n.Notice.Event != m.ID || n.Notice.Native != m.Origin.Event || n.Notice.Reason != "unreachable" || n.Notice.Partner != a.domain {
		t.Fatalf("notice = %+v", n.Notice)
	}
	if v := testutil.ToFloat64(b.p.met.givenUp.WithLabelValues("message", "unreachable")); v != 1 {
		t.Errorf("messages given up as unreachable: %v, want 1", v)
	}
	waitFor(t, "the expired message dropped", func() error {
		if _, parked, err := b.p.db().parkedPartner(t.Context(), room); err != nil || parked {
			return fmt.Errorf("still parked (%v)", err)
		}
		return nil
	})
}

// TestPartnerDownOtherRoomsGoOn: with one bus partition for every room, a message parked for a
// hub that is down holds up its own room only: another room's message goes out meanwhile, and
// the parked one follows when the hub is back.
func TestPartnerDownOtherRoomsGoOn(t *testing.T) {
	a, b := pairConf(t, storetest.SQLiteConfig, nil, nil, func(c *bus.Config) { c.Partitions = 1 })
	_, bob, room := invited(t, a, b)
	carol := event.NewUserURI(b.domain, "carol")
	if err := b.p.EnsureUser(t.Context(), carol, event.NetworkXMPP); err != nil {
		t.Fatal(err)
	}
	xmpp := make(chan *event.Envelope, 64)
	sub, err := b.bus.ConsumeIn(t.Context(), "test-xmpp", event.NetworkXMPP, func(_ context.Context, d bus.Delivery) error {
		xmpp <- d.Envelope
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Stop(context.Background()) })
	local := b.p.NewRoomID() // hosted by b: bob and carol
	publishOut(t, b, membership(local, bob, event.MembershipInvite, carol))
	select {
	case <-waitKind(xmpp, event.KindPortalRequest):
	case <-time.After(20 * time.Second):
		t.Fatal("no portal request for carol")
	}

	a.tp.Stop(t)
	held := message(t, room, bob, "for the room a hosts")
	publishOut(t, b, held)
	other := message(t, local, bob, "for carol, while a is down")
	publishOut(t, b, other)
	select {
	case got := <-waitKind(xmpp, event.KindMessage):
		if !bytes.Equal(got.Content, other.Content) {
			t.Fatalf("carol got %s from %s", got.Kind, got.Sender)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the other room's message waited for the partner that is down")
	}
	if _, parked, err := b.p.db().parkedPartner(t.Context(), room); err != nil || !parked {
		t.Fatalf("the held message is not parked: %v, %v", parked, err)
	}
	a.tp.Start(t)
	expectText(t, a, held)
}

// TestParkedAfterKill: a follower killed while it delivered a room's parked envelopes (their
// lease, parkLease, still held in the store) delivers them, in order, as soon as it is back and
// the hub answers, not when the dead process's lease runs out.
func TestParkedAfterKill(t *testing.T) {
	a, b := pair(t)
	_, bob, room := invited(t, a, b)
	a.tp.Stop(t)
	sent := publishMessages(t, b, room, bob, 3, "while a is down")
	parked := func() (n int) {
		if err := b.st.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM provider_parked`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for deadline := time.Now().Add(20 * time.Second); parked() < len(sent); {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages parked", parked(), len(sent))
		}
		time.Sleep(20 * time.Millisecond)
	}
	// What a process killed in the middle of drainRoom leaves behind: the room's lease.
	if ok, err := b.p.db().claimParked(t.Context(), room, time.Now(), parkLease); err != nil || !ok {
		t.Fatalf("claim: %v, %v", ok, err)
	}
	b.restart(t)
	a.tp.Start(t)
	for _, m := range sent {
		expectText(t, a, m)
	}
}
