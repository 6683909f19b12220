package protocol_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
)

// TestPartnerReachability: a follower that does not answer is down (metrics, Down, PartnerBack)
// and its queue waits in backoff; when it calls us again (any authenticated request), the
// listeners learn it at once, the outbox retries its queue now, and the metrics show it up with
// the certificate it presented and an empty backlog (0, not a missing series).
func TestPartnerReachability(t *testing.T) {
	reg := prometheus.NewRegistry()
	hb := &handler{}
	a, b := protocoltest.NewPair(t, domainA, domainB, &handler{}, hb, protocoltest.Options{Registerer: reg})
	obReg := prometheus.NewRegistry()
	// A backoff far longer than the test: only a wake-up can deliver in time.
	ob, _ := startOutboxWith(t, a, nil, func(c *protocol.OutboxConfig) {
		c.Now, c.MinBackoff, c.MaxBackoff, c.Registerer = time.Now, 10*time.Minute, 10*time.Minute, obReg
	})
	again := make(chan event.Domain, 4)
	remove := a.Client.OnAnswerAgain(func(d event.Domain) {
		_ = ob.WakeFollower(context.Background(), d)
		again <- d
	})
	defer remove()
	room := event.NewRoomURI(domainA, "ward7")

	b.Stop(t)
	enqueueEach(t, a, ob, room, 1, 2, 3)
	ob.Wake()
	waitFor(t, 20*time.Second, "a failed delivery", func() bool {
		h, ok := head(t, a.Store, string(room))
		return ok && h.attempts >= 1
	})
	down := a.Client.Down()
	if len(down) != 1 || down[0].Domain != domainB || down[0].DownSince.IsZero() {
		t.Fatalf("Down() = %+v, want b since the failure", down)
	}
	back := a.Client.PartnerBack(domainB)
	select {
	case <-back:
		t.Fatal("PartnerBack is closed while b is down")
	default:
	}
	if v := value(t, reg, "mimi_gateway_partner_up", domainB); v != 0 {
		t.Errorf("partner_up{b} = %v while b is down", v)
	}
	if v := value(t, obReg, "mimi_gateway_protocol_outbox_backlog", domainB); v != 3 {
		t.Errorf("outbox backlog{b} = %v, want 3", v)
	}
	if n, err := testutil.GatherAndCount(obReg, "mimi_gateway_protocol_outbox_retries_total", "mimi_gateway_protocol_outbox_oldest_age_seconds"); err != nil || n != 2 {
		t.Errorf("retries and oldest age: %d series, %v", n, err)
	}

	// b is back and calls a (a /notify of a room b hosts): a hears it and delivers at once.
	b.Start(t)
	start := time.Now()
	body := notifyBody(t, 9)
	if err := b.Client.Notify(t.Context(), domainA, event.NewRoomURI(domainB, "r"), body); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-again:
		if d != domainB {
			t.Fatalf("listener told about %s", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the listener was not told that b answers again")
	}
	select {
	case <-back:
	case <-time.After(10 * time.Second):
		t.Fatal("PartnerBack was not closed when b answered")
	}
	waitFor(t, 30*time.Second, "the queue delivered", func() bool { return len(delivered(hb, room)) == 3 })
	t.Logf("queue delivered %v after b called again (backoff was 10m)", time.Since(start).Round(time.Millisecond))
	if got := delivered(hb, room); got[0] != 1 || got[2] != 3 {
		t.Fatalf("delivered %v, want 1 2 3", got)
	}
	// The follower accepted the bodies just before our client read its answer.
	waitFor(t, 10*time.Second, "b's certificate seen", func() bool { return !a.Client.Reachability(domainB).CertNotAfter.IsZero() })
	if v := value(t, reg, "mimi_gateway_partner_up", domainB); v != 1 {
		t.Errorf("partner_up{b} = %v after b answered", v)
	}
	if v := value(t, reg, "mimi_gateway_partner_certificate_expiry_timestamp_seconds", domainB); v != float64(b.Certificate.Leaf.NotAfter.Unix()) {
		t.Errorf("b's certificate expiry = %v, want %d", v, b.Certificate.Leaf.NotAfter.Unix())
	}
	if v := value(t, reg, "mimi_gateway_certificate_expiry_timestamp_seconds", ""); v != float64(a.Certificate.Leaf.NotAfter.Unix()) {
		t.Errorf("our certificate expiry = %v, want %d", v, a.Certificate.Leaf.NotAfter.Unix())
	}
	if len(a.Client.Down()) != 0 {
		t.Errorf("Down() = %+v after b answered", a.Client.Down())
	}
	// An empty backlog is still a series (0), so that an alert on it sees the partner.
	waitFor(t, 10*time.Second, "b's queue emptied", func() bool { _, ok := head(t, a.Store, string(room)); return !ok })
	if v := value(t, obReg, "mimi_gateway_protocol_outbox_backlog", domainB); v != 0 {
		t.Errorf("outbox backlog{b} = %v after delivery, want 0", v)
	}
	if v := value(t, obReg, "mimi_gateway_protocol_outbox_oldest_age_seconds", domainB); v != 0 {
		t.Errorf("outbox oldest age{b} = %v after delivery, want 0", v)
	}
}

// value returns the value of one series of the gathered metric name: the one with label
// partner = p, or the first for p == "".
func value(t *testing.T, g prometheus.Gatherer, name string, p event.Domain) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := p == ""
			for _, l := range m.GetLabel() {
				match = match || l.GetName() == "partner" && l.GetValue() == string(p)
			}
			switch {
			case !match:
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			default:
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no series %s{partner=%q}", name, p)
	return 0
}
