package provider

import (
	"bytes"
	"fmt"
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
	var sent []*event.Envelope
	for i := range 5 {
		m := message(t, room, alice, fmt.Sprintf("while b is down %d", i))
		publishOut(t, a, m)
		sent = append(sent, m)
	}
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
	sent = sent[:0]
	for i := range 3 {
		m := message(t, room, bob, fmt.Sprintf("while a is down %d", i))
		publishOut(t, b, m)
		sent = append(sent, m)
	}
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

// TestNoticeUndelivered: a message the bus gives up on (its last delivery failed: here the hub
// is down and the handler's deadline leaves no time to wait) is told to its sender as undelivered.
func TestNoticeUndelivered(t *testing.T) {
	logs := &logBuffer{}
	a, b := pairConf(t, storetest.SQLiteConfig, nil, observed(logs, prometheus.NewRegistry()), func(c *bus.Config) {
		c.MaxDeliveries, c.HandlerTimeout = 2, 20*time.Second
	})
	_, bob, room := invited(t, a, b)
	a.tp.Stop(t)
	m := message(t, room, bob, "nobody will read this")
	publishOut(t, b, m)
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
}
