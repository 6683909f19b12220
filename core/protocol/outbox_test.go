package protocol_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
	"github.com/mimi-gateway/mimi-gateway/core/testwait"
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

// waitFor polls cond until it holds or the timeout (scaled for the machine, testwait.Scale)
// passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testwait.Scale(timeout))
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
	return startOutboxWith(t, hub, clk, nil)
}

// startOutboxWith starts an outbox whose config edit may change.
func startOutboxWith(t *testing.T, hub *protocoltest.Provider, clk *clock, edit func(*protocol.OutboxConfig)) (*protocol.Outbox, context.CancelFunc) {
	t.Helper()
	cfg := protocol.OutboxConfig{
		Store: hub.Store, Sender: hub.Client, Now: clk.Now,
		PollInterval: 10 * time.Millisecond, MinBackoff: time.Second, MaxBackoff: time.Minute,
		Registerer: prometheus.NewRegistry(),
	}
	if edit != nil {
		edit(&cfg)
	}
	ob, err := protocol.NewOutbox(cfg)
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
		waitFor(t, 20*time.Second, "all fanout delivered", func() bool {
			return len(delivered(hb, room))+len(delivered(hb, otherRoom)) == 6
		})
		ts := delivered(hb, room)
		want := []uint64{1, 2, 3, 4, 5}
		if len(ts) != len(want) {
			t.Fatalf("room got timestamps %v, want %v", ts, want)
		}
		for i := range want {
			if ts[i] != want[i] {
				t.Fatalf("room got timestamps %v, want %v (in order)", ts, want)
			}
		}
		waitEmpty(t, ob, 10*time.Second)
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
	type expiry struct {
		follower event.Domain
		room     event.RoomURI
		bodies   int
	}
	expired := make(chan expiry, 4)
	ob, _ := startOutboxWith(t, a, clk, func(c *protocol.OutboxConfig) {
		c.OnExpire = func(_ context.Context, f event.Domain, r event.RoomURI, n int) { expired <- expiry{f, r, n} }
	})
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
	select {
	case e := <-expired:
		if e != (expiry{"c.example", "mimi://a.example/r/c", 1}) {
			t.Fatalf("OnExpire got %+v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnExpire was not called")
	}
}

// waitEmpty polls until ob has nothing queued.
func waitEmpty(t *testing.T, ob *protocol.Outbox, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, "outbox empty", func() bool {
		n, err := ob.Pending(context.Background())
		return err == nil && n == 0
	})
}

// delivered lists the timestamps of the FanoutMessages h accepted for room, in order.
func delivered(h *handler, r event.RoomURI) []uint64 {
	var ts []uint64
	for _, n := range h.notified() {
		if n.Room == r {
			for _, m := range n.Messages {
				ts = append(ts, m.Timestamp)
			}
		}
	}
	return ts
}

// batchSizes lists how many FanoutMessages each /notify h accepted for room carried.
func batchSizes(h *handler, r event.RoomURI) []int {
	var sizes []int
	for _, n := range h.notified() {
		if n.Room == r {
			sizes = append(sizes, len(n.Messages))
		}
	}
	return sizes
}

// enqueueEach enqueues one body per timestamp, each in its own transaction (as the hub
// accepts messages one by one).
func enqueueEach(t *testing.T, hub *protocoltest.Provider, ob *protocol.Outbox, r event.RoomURI, ts ...uint64) {
	t.Helper()
	for _, i := range ts {
		if err := hub.Store.InTx(t.Context(), func(tx *store.Tx) error {
			return ob.EnqueueBody(t.Context(), tx, domainB, r, notifyBody(t, i))
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// enqueueIdle queues one body per timestamp for room through an outbox that is not running (as
// the hub accepts messages while nothing delivers), to be sent by an outbox started after.
func enqueueIdle(t *testing.T, hub *protocoltest.Provider, clk *clock, r event.RoomURI, ts ...uint64) {
	t.Helper()
	idle, err := protocol.NewOutbox(protocol.OutboxConfig{Store: hub.Store, Sender: hub.Client, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	enqueueEach(t, hub, idle, r, ts...)
}

func seq(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

// TestOutboxBatches: the queued bodies of one room go out in order, several per /notify, within
// MaxBatch and MaxBatchBytes; another room is batched separately.
func TestOutboxBatches(t *testing.T) {
	bodyLen := int64(len(notifyBody(t, 1)))
	const otherRoom event.RoomURI = "mimi://a.example/r/other"
	tests := []struct {
		name      string
		maxBatch  int
		maxBytes  int64
		wantSizes []int // of room's ten bodies
		wantOther []int // of the other room's three
	}{
		{"count limit", 4, 0, []int{4, 4, 2}, []int{3}},
		{"byte limit", 0, 3*bodyLen - 1, []int{2, 2, 2, 2, 2}, []int{2, 1}},
		{"defaults", 0, 0, []int{10}, []int{3}},
		{"no batching", 1, 0, []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, []int{1, 1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			storetest.Each(t, func(t *testing.T, st *store.Store) {
				hb := &handler{}
				a, _ := protocoltest.NewPair(t, domainA, domainB, &handler{}, hb, protocoltest.Options{Store: st})
				clk := &clock{t: time.UnixMilli(1_800_000_000_000)}
				// Queue everything first (an outbox that is not running), then deliver.
				enqueueIdle(t, a, clk, room, seq(1, 10)...)
				enqueueIdle(t, a, clk, otherRoom, 101, 102, 103)
				ob, _ := startOutboxWith(t, a, clk, func(c *protocol.OutboxConfig) {
					c.MaxBatch, c.MaxBatchBytes = tt.maxBatch, tt.maxBytes
				})
				ob.Wake()
				waitFor(t, 20*time.Second, "all fanout delivered", func() bool {
					return len(delivered(hb, room)) == 10 && len(delivered(hb, otherRoom)) == 3
				})
				waitEmpty(t, ob, 10*time.Second)
				if got := delivered(hb, room); !slices.Equal(got, seq(1, 10)) {
					t.Fatalf("room got %v, want 1..10 in order, once each", got)
				}
				if got := delivered(hb, otherRoom); !slices.Equal(got, []uint64{101, 102, 103}) {
					t.Fatalf("other room got %v", got)
				}
				if got := batchSizes(hb, room); !slices.Equal(got, tt.wantSizes) {
					t.Fatalf("room's /notify sizes %v, want %v", got, tt.wantSizes)
				}
				if got := batchSizes(hb, otherRoom); !slices.Equal(got, tt.wantOther) {
					t.Fatalf("other room's /notify sizes %v, want %v", got, tt.wantOther)
				}
				for _, n := range hb.notified() {
					if tt.maxBytes > 0 && int64(len(n.Body)) > tt.maxBytes {
						t.Fatalf("a /notify body of %d bytes exceeds MaxBatchBytes %d", len(n.Body), tt.maxBytes)
					}
				}
			})
		})
	}
}

// lossySender delivers through a real client but reports the calls lose says as failed, as if
// the follower's 201 had been lost on the way back.
type lossySender struct {
	protocol.NotifySender
	mu    sync.Mutex
	calls int
	lose  func(n int) bool
}

func (s *lossySender) Notify(ctx context.Context, d event.Domain, r event.RoomURI, body []byte) error {
	s.mu.Lock()
	n := s.calls
	s.calls++
	s.mu.Unlock()
	if err := s.NotifySender.Notify(ctx, d, r, body); err != nil {
		return err
	}
	if s.lose(n) {
		return errors.New("connection reset (test: answer lost)")
	}
	return nil
}

// TestOutboxBatchRetry: a batch whose 201 was lost is resent unchanged even though more bodies
// were queued meanwhile, so the follower drops the replay (no message twice); a batch the
// follower refuses (503) is retried whole; everything arrives once, in order.
func TestOutboxBatchRetry(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		hb := &handler{notifyErr: func(n int) error {
			if n == 1 { // the second batch the follower's handler sees
				return &protocol.StatusError{Status: http.StatusServiceUnavailable, RetryAfter: 7 * time.Second, Detail: "busy"}
			}
			return nil
		}}
		a, _ := protocoltest.NewPair(t, domainA, domainB, &handler{}, hb, protocoltest.Options{Store: st})
		clk := &clock{t: time.UnixMilli(1_800_000_000_000)}
		sender := &lossySender{NotifySender: a.Client, lose: func(n int) bool { return n == 0 }}
		idle, err := protocol.NewOutbox(protocol.OutboxConfig{Store: a.Store, Sender: sender, Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		enqueueEach(t, a, idle, room, 1, 2)
		ob, _ := startOutboxWith(t, a, clk, func(c *protocol.OutboxConfig) { c.Sender, c.MaxBatch = sender, 3 })
		ob.Wake()

		// [1 2] is accepted but the answer is lost: the head records a failed attempt.
		waitFor(t, 10*time.Second, "the lost answer recorded", func() bool {
			h, ok := head(t, a.Store, string(room))
			return ok && h.attempts == 1
		})
		if got := delivered(hb, room); !slices.Equal(got, []uint64{1, 2}) {
			t.Fatalf("after the first batch the follower has %v, want [1 2]", got)
		}
		enqueueEach(t, a, ob, room, seq(3, 8)...) // a re-made batch would be [1 2 3]
		clk.Advance(2 * time.Second)              // past the first backoff (1s ± 20 %)
		ob.Wake()

		// The replay of [1 2] is dropped by the follower; [3 4 5] gets 503 + Retry-After.
		waitFor(t, 10*time.Second, "a 503 recorded", func() bool {
			h, ok := head(t, a.Store, string(room))
			return ok && h.lastStatus == http.StatusServiceUnavailable
		})
		if h, _ := head(t, a.Store, string(room)); h.next != clk.Now().Add(7*time.Second).UnixMilli() {
			t.Fatalf("after 503: next attempt %d, want now+7s", h.next)
		}
		clk.Advance(8 * time.Second)
		ob.Wake()
		waitEmpty(t, ob, 10*time.Second)
		if got := delivered(hb, room); !slices.Equal(got, seq(1, 8)) {
			t.Fatalf("follower got %v, want 1..8 in order, once each", got)
		}
		if got := batchSizes(hb, room); !slices.Equal(got, []int{2, 3, 3}) {
			t.Fatalf("/notify sizes %v, want [2 3 3]", got)
		}
		sender.mu.Lock()
		calls := sender.calls
		sender.mu.Unlock()
		if calls != 5 { // [1 2] lost, [1 2] replay, [3 4 5] 503, [3 4 5], [6 7 8]
			t.Fatalf("%d /notify requests, want 5", calls)
		}
	})
}

// TestOutboxSplitsOn413: a batch larger than the follower's /notify limit is refused with 413
// and split until it fits; every body still arrives once, in order.
func TestOutboxSplitsOn413(t *testing.T) {
	bodyLen := int64(len(notifyBody(t, 1)))
	hb := &handler{}
	a, _ := protocoltest.NewPair(t, domainA, domainB, &handler{}, hb,
		protocoltest.Options{Limits: protocol.Limits{Notify: 5 * bodyLen / 2}})
	clk := &clock{t: time.UnixMilli(1_800_000_000_000)}
	enqueueIdle(t, a, clk, room, seq(1, 6)...)
	ob, _ := startOutbox(t, a, clk)
	ob.Wake()
	waitEmpty(t, ob, 20*time.Second)
	if got := delivered(hb, room); !slices.Equal(got, seq(1, 6)) {
		t.Fatalf("follower got %v, want 1..6 in order, once each", got)
	}
	// [1..6] 413 → [1 2 3] 413 → [1]; [2..6] 413 → [2 3]; [4 5 6] 413 → [4]; [5 6].
	if got := batchSizes(hb, room); !slices.Equal(got, []int{1, 2, 1, 2}) {
		t.Fatalf("/notify sizes %v, want [1 2 1 2]", got)
	}
}

// TestOutboxUndecodableBodyAlone: a queued body that is not FanoutMessages is sent alone, so its
// neighbours are delivered rather than refused (400) with it; it expires on its own.
func TestOutboxUndecodableBodyAlone(t *testing.T) {
	hb := &handler{}
	a, _ := protocoltest.NewPair(t, domainA, domainB, &handler{}, hb, protocoltest.Options{})
	clk := &clock{t: time.UnixMilli(1_800_000_000_000)}
	idle, err := protocol.NewOutbox(protocol.OutboxConfig{Store: a.Store, Sender: a.Client, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	enqueueEach(t, a, idle, room, 1)
	if err := a.Store.InTx(t.Context(), func(tx *store.Tx) error {
		return idle.EnqueueBody(t.Context(), tx, domainB, room, []byte("not a FanoutMessage"))
	}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(5 * time.Second)
	enqueueEach(t, a, idle, room, 2, 3)
	ob, _ := startOutboxWith(t, a, clk, func(c *protocol.OutboxConfig) { c.Expire = 10 * time.Second })
	ob.Wake()
	waitFor(t, 10*time.Second, "the bad body refused", func() bool {
		h, ok := head(t, a.Store, string(room))
		return ok && h.lastStatus == http.StatusBadRequest
	})
	if got := delivered(hb, room); !slices.Equal(got, []uint64{1}) {
		t.Fatalf("before the bad body: follower got %v, want [1]", got)
	}
	clk.Advance(6 * time.Second) // the bad body is 11 s old, 2 and 3 are 6 s old
	ob.Wake()
	waitEmpty(t, ob, 10*time.Second)
	if got := delivered(hb, room); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("follower got %v, want [1 2 3]", got)
	}
	if got := batchSizes(hb, room); !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("/notify sizes %v, want [1 2]", got)
	}
}

// hangingSender delivers its first batch through a real client and then does not return until
// its context ends, as a gateway that is killed while it waits for the follower's answer.
type hangingSender struct {
	protocol.NotifySender
	once sync.Once
	sent chan struct{} // closed after the first batch reached the follower
}

func (s *hangingSender) Notify(ctx context.Context, d event.Domain, r event.RoomURI, body []byte) error {
	if err := s.NotifySender.Notify(ctx, d, r, body); err != nil {
		return err
	}
	s.once.Do(func() { close(s.sent) })
	<-ctx.Done()
	return ctx.Err()
}

// TestOutboxKilledWhileSending: an outbox that ends while a batch is on its way leaves the batch
// claimed for the lease (two minutes); the next outbox on the store sends it again at once (no
// time passes on the test's clock) and the rest of the queue follows; the follower drops the
// replay of the batch that had reached it, so everything arrives once, in order.
func TestOutboxKilledWhileSending(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		hb := &handler{}
		a, _ := protocoltest.NewPair(t, domainA, domainB, &handler{}, hb, protocoltest.Options{Store: st})
		clk := &clock{t: time.UnixMilli(1_800_000_000_000)}
		enqueueIdle(t, a, clk, room, seq(1, 5)...)
		hang := &hangingSender{NotifySender: a.Client, sent: make(chan struct{})}
		ob, stop := startOutboxWith(t, a, clk, func(c *protocol.OutboxConfig) { c.Sender, c.MaxBatch = hang, 2 })
		ob.Wake()
		select {
		case <-hang.sent:
		case <-time.After(10 * time.Second):
			t.Fatal("the first batch was not sent")
		}
		stop() // the process ends while it waits for the answer
		h, ok := head(t, a.Store, string(room))
		if !ok || h.next <= clk.Now().UnixMilli() || h.attempts != 0 {
			t.Fatalf("after the end: head %+v (found %v), want the batch still claimed (next attempt later, no attempt recorded)", h, ok)
		}
		if got := delivered(hb, room); !slices.Equal(got, []uint64{1, 2}) {
			t.Fatalf("before the restart the follower has %v, want [1 2]", got)
		}

		ob2, _ := startOutboxWith(t, a, clk, func(c *protocol.OutboxConfig) { c.MaxBatch = 2 })
		ob2.Wake()
		waitEmpty(t, ob2, 10*time.Second)
		if got := delivered(hb, room); !slices.Equal(got, seq(1, 5)) {
			t.Fatalf("follower got %v, want 1..5 in order, once each", got)
		}
		if got := batchSizes(hb, room); !slices.Equal(got, []int{2, 2, 1}) {
			t.Fatalf("/notify sizes %v, want [2 2 1] (the replay of [1 2] dropped by the follower)", got)
		}
	})
}
