package protocol_test

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type outboxHead struct {
	attempts, lastStatus int
	next                 int64
}

func head(t *testing.T, st *store.Store, r string) (outboxHead, bool) {
	t.Helper()
	var h outboxHead
	err := st.QueryRowContext(context.Background(), `SELECT attempts, last_status, next_attempt_at FROM protocol_outbox WHERE room = ? ORDER BY id LIMIT 1`, r).
		Scan(&h.attempts, &h.lastStatus, &h.next)
	if err != nil {
		return h, false
	}
	return h, true
}

func startOutbox(t *testing.T, hub *protocoltest.Provider, clk *clock) (*protocol.Outbox, context.CancelFunc) {
	t.Helper()
	ob, err := protocol.NewOutbox(protocol.OutboxConfig{
		Store: hub.Store, Sender: hub.Client, Now: clk.Now,
		PollInterval: 10 * time.Millisecond, MinBackoff: time.Second, MaxBackoff: time.Minute,
		Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = ob.Run(ctx)
	}()
	stop := func() {
		cancel()
		<-done
	}
	t.Cleanup(stop)
	return ob, stop
}

// TestOutbox: fanout enqueued in the hub's transaction is delivered in order per room; a 503
// with Retry-After delays the retry by exactly that; a follower that is down is retried with
// backoff by a restarted outbox; after it comes back everything arrives once, in order.
func TestOutbox(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		hb := &handler{notifyErr: func(n int) error {
			if n == 0 {
				return &protocol.StatusError{Status: http.StatusServiceUnavailable, RetryAfter: 7 * time.Second, Detail: "starting"}
			}
			return nil
		}}
		a, b := protocoltest.NewPair(t, domainA, domainB, &handler{}, hb, protocoltest.Options{Store: st})
		clk := &clock{t: time.UnixMilli(1_800_000_000_000)}
		ob, stop := startOutbox(t, a, clk)

		const otherRoom = "mimi://a.example/r/other"
		err := a.Store.InTx(t.Context(), func(tx *store.Tx) error {
			for i := uint64(1); i <= 5; i++ {
				if err := ob.EnqueueBody(t.Context(), tx, domainB, room, notifyBody(t, i)); err != nil {
					return err
				}
			}
			return ob.EnqueueBody(t.Context(), tx, domainB, otherRoom, notifyBody(t, 100))
		})
		if err != nil {
			t.Fatal(err)
		}
		ob.Wake()

		// The first attempt for one of the rooms gets 503 + Retry-After: 7.
		var failedRoom string
		waitFor(t, 10*time.Second, "a 503 recorded", func() bool {
			for _, r := range []string{string(room), otherRoom} {
				if h, ok := head(t, a.Store, r); ok && h.attempts == 1 {
					failedRoom = r
					return true
				}
			}
			return false
		})
		h, _ := head(t, a.Store, failedRoom)
		if h.lastStatus != http.StatusServiceUnavailable || h.next != clk.Now().Add(7*time.Second).UnixMilli() {
			t.Fatalf("after 503: %+v, want status 503 and next attempt now+7s", h)
		}

		// Restart: the outbox stops, the follower goes down, time passes, a new outbox starts.
		stop()
		b.Stop(t)
		a.Client.CloseIdleConnections()
		clk.Advance(8 * time.Second)
		_, _ = startOutbox(t, a, clk)
		waitFor(t, 10*time.Second, "a transport failure recorded", func() bool {
			h, ok := head(t, a.Store, failedRoom)
			return ok && h.attempts == 2 && h.lastStatus == 0
		})

		// The follower comes back; after the backoff everything is delivered in order.
		b.Start(t)
		clk.Advance(2 * time.Minute)
		waitFor(t, 20*time.Second, "all fanout delivered", func() bool { return len(hb.notified()) == 6 })
		var ts []uint64
		for _, n := range hb.notified() {
			if n.Room == room {
				ts = append(ts, n.Messages[0].Timestamp)
			}
		}
		want := []uint64{1, 2, 3, 4, 5}
		if len(ts) != len(want) {
			t.Fatalf("room got timestamps %v, want %v", ts, want)
		}
		for i := range want {
			if ts[i] != want[i] {
				t.Fatalf("room got timestamps %v, want %v (in order)", ts, want)
			}
		}
		waitFor(t, 10*time.Second, "outbox empty", func() bool {
			n, err := ob.Pending(context.Background())
			return err == nil && n == 0
		})
	})
}

// TestOutboxEnqueueRollsBack: fanout enqueued in a transaction that fails is not sent.
func TestOutboxEnqueueRollsBack(t *testing.T) {
	hb := &handler{}
	a, _ := protocoltest.NewPair(t, domainA, domainB, &handler{}, hb, protocoltest.Options{})
	clk := &clock{t: time.Now()}
	ob, _ := startOutbox(t, a, clk)
	errBoom := context.Canceled
	err := a.Store.InTx(t.Context(), func(tx *store.Tx) error {
		if err := ob.EnqueueBody(t.Context(), tx, domainB, room, notifyBody(t, 1)); err != nil {
			return err
		}
		return errBoom
	})
	if err == nil {
		t.Fatal("transaction did not fail")
	}
	if n, err := ob.Pending(t.Context()); err != nil || n != 0 {
		t.Fatalf("pending %d, %v after rollback", n, err)
	}
	// A committed one is delivered.
	if err := a.Store.InTx(t.Context(), func(tx *store.Tx) error {
		return ob.Enqueue(t.Context(), tx, domainB, room, &protocol.FanoutMessage{Timestamp: 2, Message: appMessage(t, 8)})
	}); err != nil {
		t.Fatal(err)
	}
	ob.Wake()
	waitFor(t, 10*time.Second, "delivery", func() bool { return len(hb.notified()) == 1 })
	if got := hb.notified()[0].Messages[0].Timestamp; got != 2 {
		t.Fatalf("delivered timestamp %d, want 2", got)
	}
}

// TestOutboxExpiry: a body that cannot be delivered (here: to a provider that is no partner) is
// retried with backoff and dropped after Expire (72h by default).
func TestOutboxExpiry(t *testing.T) {
	a, _ := protocoltest.NewPair(t, domainA, domainB, &handler{}, &handler{}, protocoltest.Options{})
	clk := &clock{t: time.UnixMilli(1_800_000_000_000)}
	ob, _ := startOutbox(t, a, clk)
	if err := a.Store.InTx(t.Context(), func(tx *store.Tx) error {
		return ob.EnqueueBody(t.Context(), tx, "c.example", "mimi://a.example/r/c", notifyBody(t, 1))
	}); err != nil {
		t.Fatal(err)
	}
	ob.Wake()
	waitFor(t, 10*time.Second, "a failed attempt", func() bool {
		h, ok := head(t, a.Store, "mimi://a.example/r/c")
		return ok && h.attempts >= 1
	})
	if n, err := ob.Pending(t.Context()); err != nil || n != 1 {
		t.Fatalf("pending %d, %v; want 1 before expiry", n, err)
	}
	clk.Advance(73 * time.Hour)
	ob.Wake()
	waitFor(t, 10*time.Second, "expiry", func() bool {
		n, err := ob.Pending(context.Background())
		return err == nil && n == 0
	})
}
