package lease

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

func newLease(t *testing.T, s *store.Store, holder string, ttl time.Duration) *Lease {
	t.Helper()
	l, err := New(t.Context(), Config{Store: s, Name: "provider", Holder: holder, Address: holder + ":1", TTL: ttl, RetryInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// freeze stops a holder's renewals without releasing, as a paused or cut-off process would.
func freeze(l *Lease) {
	close(l.stop)
	<-l.done
}

func write(ctx context.Context, s *store.Store, key string) error {
	_, err := s.KV("lease-test").Put(ctx, key, []byte("x"))
	return err
}

func TestLeaseOneHolderAndTakeover(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		a := newLease(t, s, "a", 800*time.Millisecond)
		ta, err := a.Campaign(ctx)
		if err != nil {
			t.Fatal(err)
		}
		s.SetFence(a.Fence)
		if err := write(ctx, s, "by-a"); err != nil {
			t.Fatalf("the holder's write: %v", err)
		}
		in, err := Current(ctx, s, "provider")
		if err != nil || in.Holder != "a" || in.Token != ta || in.Address != "a:1" {
			t.Fatalf("Current = %+v, %v; want holder a, token %d", in, err, ta)
		}

		// While a renews, b stands by.
		b := newLease(t, s, "b", 800*time.Millisecond)
		short, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err = b.Campaign(short)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("b took a renewed lease: %v", err)
		}

		// a stops renewing (paused): b takes over after the TTL with the next token.
		freeze(a)
		tb, err := b.Campaign(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if tb != ta+1 {
			t.Fatalf("b's token = %d, want %d", tb, ta+1)
		}
		if err := write(ctx, s, "by-a-late"); !errors.Is(err, store.ErrFenced) {
			t.Fatalf("a's write after the takeover: %v, want ErrFenced", err)
		}
		select {
		case <-a.Lost():
		default:
			t.Fatal("a's Lost is not closed")
		}
		// Even a holder whose own clock still believes in the lease is refused by the store.
		a.mu.Lock()
		a.token, a.deadline = ta, time.Now().Add(time.Hour)
		a.mu.Unlock()
		if err := write(ctx, s, "by-a-skewed"); !errors.Is(err, store.ErrFenced) {
			t.Fatalf("a's write with a stale token it believes valid: %v, want ErrFenced", err)
		}
		if _, err := s.KV("lease-test").Get(ctx, "by-a-skewed"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a fenced write was stored: %v", err)
		}
		s.SetFence(b.Fence)
		if err := write(ctx, s, "by-b"); err != nil {
			t.Fatalf("the new holder's write: %v", err)
		}
		// A transaction is fenced too, and a refused one leaves nothing.
		s.SetFence(a.Fence)
		err = s.InTx(ctx, func(tx *store.Tx) error {
			_, err := tx.ExecContext(ctx, `DELETE FROM store_kv WHERE scope = ?`, "lease-test")
			return err
		})
		if !errors.Is(err, store.ErrFenced) {
			t.Fatalf("a's transaction: %v, want ErrFenced", err)
		}
		s.SetFence(nil)
		if _, err := s.KV("lease-test").Get(ctx, "by-b"); err != nil {
			t.Fatalf("the fenced transaction's delete was committed: %v", err)
		}

		// Release hands over at once.
		if err := b.Release(ctx); err != nil {
			t.Fatal(err)
		}
		c := newLease(t, s, "c", time.Hour)
		short, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		tc, err := c.Campaign(short)
		if err != nil {
			t.Fatalf("c after b's release: %v", err)
		}
		if tc != tb+1 {
			t.Fatalf("c's token = %d, want %d", tc, tb+1)
		}
		if err := c.Release(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func TestLeaseRenewKeepsIt(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		a := newLease(t, s, "a", 3*time.Second)
		if _, err := a.Campaign(ctx); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = a.Release(ctx) }()
		s.SetFence(a.Fence)
		defer s.SetFence(nil)
		// Well past the TTL the holder still holds it (renewals) and writes.
		select {
		case <-a.Lost():
			t.Fatal("lease lost while renewing")
		case <-time.After(7 * time.Second):
		}
		if err := write(ctx, s, "k"); err != nil {
			t.Fatal(err)
		}
		in, err := Current(ctx, s, "provider")
		if err != nil || in.Holder != "a" {
			t.Fatalf("Current = %+v, %v", in, err)
		}
	})
}
