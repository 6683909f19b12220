package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

var errApply = errors.New("apply failed")

func TestMarkProcessedAtomicWithCallerWrites(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		// First attempt: mark + own write, then the work fails: both roll back.
		err := s.InTx(ctx, func(tx *store.Tx) error {
			first, err := tx.MarkProcessed(ctx, "endpoint", "ev-1")
			if err != nil || !first {
				return fmt.Errorf("mark: %v %v", first, err)
			}
			if _, err := tx.KV("endpoint.state").Put(ctx, "last", []byte("ev-1")); err != nil {
				return err
			}
			if ok, err := tx.IsProcessed(ctx, "endpoint", "ev-1"); err != nil || !ok {
				return fmt.Errorf("not visible inside tx: %v %v", ok, err)
			}
			return errApply
		})
		if !errors.Is(err, errApply) {
			t.Fatalf("InTx err = %v, want the callback's error unwrapped", err)
		}
		if ok, err := s.IsProcessed(ctx, "endpoint", "ev-1"); err != nil || ok {
			t.Fatalf("after rollback IsProcessed = %v, %v; want false", ok, err)
		}
		if _, err := s.KV("endpoint.state").Get(ctx, "last"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("after rollback KV get err = %v, want ErrNotFound", err)
		}

		// Redelivery: now it succeeds and commits both.
		apply := func() (applied bool, err error) {
			err = s.InTx(ctx, func(tx *store.Tx) error {
				first, err := tx.MarkProcessed(ctx, "endpoint", "ev-1")
				if err != nil || !first {
					return err
				}
				applied = true
				_, err = tx.KV("endpoint.state").Put(ctx, "last", []byte("ev-1"))
				return err
			})
			return applied, err
		}
		if applied, err := apply(); err != nil || !applied {
			t.Fatalf("second delivery: applied=%v err=%v", applied, err)
		}
		if applied, err := apply(); err != nil || applied {
			t.Fatalf("third delivery: applied=%v err=%v; want a skipped duplicate", applied, err)
		}
		e, err := s.KV("endpoint.state").Get(ctx, "last")
		if err != nil || e.Version != 1 {
			t.Fatalf("KV = %+v, %v; want version 1 (applied exactly once)", e, err)
		}
	})
}

func TestMarkProcessedConcurrentSameEvent(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		const workers = 8
		var firsts atomic.Int32
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for range workers {
			wg.Go(func() {
				err := s.InTx(ctx, func(tx *store.Tx) error {
					first, err := tx.MarkProcessed(ctx, "race", "same-event")
					if first {
						firsts.Add(1)
					}
					return err
				})
				if err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if n := firsts.Load(); n != 1 {
			t.Fatalf("%d workers saw first=true, want exactly 1", n)
		}
	})
}

func TestMarkProcessedLimits(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		cases := []struct {
			scope store.Scope
			id    string
		}{
			{"", "e"},
			{"s", ""},
			{store.Scope(strings.Repeat("s", store.MaxScopeLen+1)), "e"},
			{"s", strings.Repeat("e", store.MaxEventIDLen+1)},
			{"s", "nul\x00byte"},
			{"s", "bad\xffutf8"},
		}
		for _, c := range cases {
			if _, err := s.MarkProcessed(ctx, c.scope, c.id); !errors.Is(err, store.ErrInvalidArgument) {
				t.Errorf("MarkProcessed(%q, %q) err = %v, want ErrInvalidArgument", c.scope, c.id, err)
			}
		}
		// The limits themselves are accepted.
		if first, err := s.MarkProcessed(ctx, store.Scope(strings.Repeat("s", store.MaxScopeLen)), strings.Repeat("é", store.MaxEventIDLen/2)); err != nil || !first {
			t.Errorf("at the limits: %v, %v", first, err)
		}
	})
}

func TestPruneProcessed(t *testing.T) {
	storetest.EachConfig(t, func(t *testing.T, cfg store.Config) {
		ctx := t.Context()
		s, base, now := clockedStore(t, cfg)
		// 2500 old events (more than one prune batch) and 3 new ones.
		markMany(t, s, "old", 2500)
		now.Store(base.Add(time.Hour).UnixMilli())
		for i := range 3 {
			if _, err := s.MarkProcessed(ctx, "new", fmt.Sprint(i)); err != nil {
				t.Fatal(err)
			}
		}
		n, err := s.PruneProcessed(ctx, base.Add(time.Minute))
		if err != nil || n != 2500 {
			t.Fatalf("PruneProcessed = %d, %v; want 2500", n, err)
		}
		if ok, _ := s.IsProcessed(ctx, "new", "2"); !ok {
			t.Fatal("new event pruned")
		}
		if ok, _ := s.IsProcessed(ctx, "old", "2"); ok {
			t.Fatal("old event kept")
		}
	})
}

func TestInTxPanicRollsBack(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		func() {
			defer func() {
				if p := recover(); p != "boom" {
					t.Fatalf("recovered %v, want the original panic", p)
				}
			}()
			_ = s.InTx(ctx, func(tx *store.Tx) error {
				if _, err := tx.MarkProcessed(ctx, "p", "e"); err != nil {
					return err
				}
				panic("boom")
			})
		}()
		if ok, err := s.IsProcessed(ctx, "p", "e"); err != nil || ok {
			t.Fatalf("after panic IsProcessed = %v, %v; want false", ok, err)
		}
		// The writer connection was released: the store still works.
		if first, err := s.MarkProcessed(ctx, "p", "e"); err != nil || !first {
			t.Fatalf("after panic MarkProcessed = %v, %v", first, err)
		}
	})
}

// TestConcurrentWriters hammers the store with concurrent transactions and
// autocommit writes plus concurrent reads: on SQLite none may fail with
// SQLITE_BUSY, and no write may be lost.
func TestConcurrentWriters(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		const writers, perWriter = 8, 100
		var wg sync.WaitGroup
		errs := make(chan error, writers*perWriter+8)
		var readers sync.WaitGroup
		for r := range 4 {
			readers.Go(func() {
				// Bounded reads concurrent with the writers (WAL readers
				// must not block or be blocked).
				for range 200 {
					if _, err := s.IsProcessed(ctx, "w", fmt.Sprintf("%d-0", r)); err != nil {
						errs <- fmt.Errorf("reader: %w", err)
						return
					}
					if _, err := s.KV("counter").Get(ctx, "n"); err != nil && !errors.Is(err, store.ErrNotFound) {
						errs <- fmt.Errorf("reader kv: %w", err)
						return
					}
				}
			})
		}
		for w := range writers {
			wg.Go(func() {
				for i := range perWriter {
					id := fmt.Sprintf("%d-%d", w, i)
					var err error
					if i%2 == 0 {
						// On PostgreSQL (READ COMMITTED) a concurrent
						// transaction can win the CAS: retry the whole
						// transaction, the documented pattern. On SQLite
						// transactions are serialised and never conflict.
						for attempt := 0; ; attempt++ {
							err = s.InTx(ctx, func(tx *store.Tx) error {
								if _, err := tx.MarkProcessed(ctx, "w", id); err != nil {
									return err
								}
								// Read-modify-write inside the transaction.
								kv := tx.KV("counter")
								e, err := kv.Get(ctx, "n")
								if errors.Is(err, store.ErrNotFound) {
									_, err = kv.CompareAndSwap(ctx, "n", 0, []byte("x"))
									return err
								}
								if err != nil {
									return err
								}
								_, err = kv.CompareAndSwap(ctx, "n", e.Version, []byte("x"))
								return err
							})
							if !errors.Is(err, store.ErrConflict) {
								break
							}
							if s.Dialect() == store.SQLite {
								break // a conflict on SQLite is a bug: report it
							}
						}
					} else {
						_, err = s.MarkProcessed(ctx, "w", id)
					}
					if err != nil {
						errs <- fmt.Errorf("writer %s: %w", id, err)
					}
				}
			})
		}
		wg.Wait()
		readers.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		var n int
		if err := s.QueryRowContext(ctx, `SELECT COUNT(*) FROM store_processed_events WHERE scope = ?`, "w").Scan(&n); err != nil || n != writers*perWriter {
			t.Fatalf("processed rows = %d, %v; want %d", n, err, writers*perWriter)
		}
		e, err := s.KV("counter").Get(ctx, "n")
		if err != nil || e.Version != writers*perWriter/2 {
			t.Fatalf("counter version = %d, %v; want %d (no lost updates)", e.Version, err, writers*perWriter/2)
		}
		if busy := metricValue(t, s, "mimi_gateway_store_sqlite_busy_errors_total"); busy != 0 {
			t.Fatalf("busy errors = %v, want 0", busy)
		}
		if commits := metricValue(t, s, "mimi_gateway_store_transactions_total", "result", "commit"); commits < writers*perWriter/2 {
			t.Fatalf("commit counter = %v, want >= %d", commits, writers*perWriter/2)
		}
	})
}

// metricValue reads one sample of the store's collector.
func metricValue(t *testing.T, c prometheus.Collector, name string, labels ...string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue metrics
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	t.Fatalf("metric %s %v not found", name, labels)
	return 0
}

func TestStoreCollectorIsValid(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		// The pedantic registry checks descriptors and label consistency.
		if _, err := testutil.CollectAndLint(s); err != nil {
			t.Fatal(err)
		}
		problems, err := testutil.CollectAndLint(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
		if n := testutil.CollectAndCount(s); n < 10 {
			t.Fatalf("collector yields %d metrics", n)
		}
	})
}

func TestClosedStore(t *testing.T) {
	storetest.EachConfig(t, func(t *testing.T, cfg store.Config) {
		ctx := context.Background()
		s := storetest.Open(t, cfg)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		if err := s.Ping(ctx); !errors.Is(err, store.ErrClosed) {
			t.Errorf("Ping: %v", err)
		}
		if err := s.InTx(ctx, func(*store.Tx) error { return nil }); !errors.Is(err, store.ErrClosed) {
			t.Errorf("InTx: %v", err)
		}
		if _, err := s.MarkProcessed(ctx, "s", "e"); !errors.Is(err, store.ErrClosed) {
			t.Errorf("MarkProcessed: %v", err)
		}
		if _, err := s.KV("s").Put(ctx, "k", nil); !errors.Is(err, store.ErrClosed) {
			t.Errorf("KV Put: %v", err)
		}
	})
}

// TestPingWhileWriterBusy: on SQLite a transaction holding the one writer
// connection must not make the readiness check wait.
func TestPingWhileWriterBusy(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		inTx := make(chan struct{})
		release := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- s.InTx(ctx, func(tx *store.Tx) error {
				if _, err := tx.MarkProcessed(ctx, "ping", "held"); err != nil {
					return err
				}
				close(inTx)
				<-release
				return nil
			})
		}()
		<-inTx
		pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := s.Ping(pingCtx)
		cancel()
		close(release)
		if err != nil {
			t.Fatalf("Ping while a transaction holds the writer: %v", err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// TestTwoProcessesOneSQLiteFile opens two stores on one SQLite file (as a
// running gateway and an admin CLI would) and writes from both at once:
// BEGIN IMMEDIATE and the busy timeout must make them wait, not fail.
func TestTwoProcessesOneSQLiteFile(t *testing.T) {
	cfg := storetest.SQLiteConfig(t)
	a, b := storetest.Open(t, cfg), storetest.Open(t, cfg)
	ctx := t.Context()
	const perStore = 150
	var wg sync.WaitGroup
	errs := make(chan error, 4*perStore)
	for si, s := range []*store.Store{a, b} {
		for g := range 2 {
			wg.Go(func() {
				for i := range perStore {
					id := fmt.Sprintf("%d-%d-%d", si, g, i)
					var err error
					if i%2 == 0 {
						err = s.InTx(ctx, func(tx *store.Tx) error {
							if ok, err := tx.IsProcessed(ctx, "two", id); err != nil || ok {
								return fmt.Errorf("read before write: %v %v", ok, err)
							}
							_, err := tx.MarkProcessed(ctx, "two", id)
							return err
						})
					} else {
						_, err = s.MarkProcessed(ctx, "two", id)
					}
					if err != nil {
						errs <- fmt.Errorf("%s: %w", id, err)
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var n int
	if err := a.QueryRowContext(ctx, `SELECT COUNT(*) FROM store_processed_events WHERE scope = ?`, "two").Scan(&n); err != nil || n != 4*perStore {
		t.Fatalf("rows = %d, %v; want %d", n, err, 4*perStore)
	}
}

func TestPruneProcessedScope(t *testing.T) {
	storetest.EachConfig(t, func(t *testing.T, cfg store.Config) {
		ctx := t.Context()
		s, base, now := clockedStore(t, cfg)
		// 1200 old events of "mine" (more than one batch), old ones of "other", then new ones.
		markMany(t, s, "mine", 1200)
		if _, err := s.MarkProcessed(ctx, "other", "old"); err != nil {
			t.Fatal(err)
		}
		now.Store(base.Add(time.Hour).UnixMilli())
		if _, err := s.MarkProcessed(ctx, "mine", "new"); err != nil {
			t.Fatal(err)
		}
		n, err := s.PruneProcessedScope(ctx, "mine", base.Add(time.Minute))
		if err != nil || n != 1200 {
			t.Fatalf("PruneProcessedScope = %d, %v; want 1200", n, err)
		}
		for _, c := range []struct {
			scope store.Scope
			id    string
			want  bool
		}{{"mine", "0", false}, {"mine", "1199", false}, {"mine", "new", true}, {"other", "old", true}} {
			if ok, err := s.IsProcessed(ctx, c.scope, c.id); err != nil || ok != c.want {
				t.Errorf("%s/%s processed = %v (%v), want %v", c.scope, c.id, ok, err, c.want)
			}
		}
		if _, err := s.PruneProcessedScope(ctx, "", base); !errors.Is(err, store.ErrInvalidArgument) {
			t.Errorf("empty scope: %v", err)
		}
	})
}

// clockedStore opens a store whose clock starts at base and is moved with now.
func clockedStore(t *testing.T, cfg store.Config) (*store.Store, time.Time, *atomic.Int64) {
	t.Helper()
	now := new(atomic.Int64)
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now.Store(base.UnixMilli())
	return storetest.Open(t, cfg, store.WithClock(func() time.Time { return time.UnixMilli(now.Load()) })), base, now
}

// markMany marks IDs 0..n-1 of scope processed in one transaction.
func markMany(t *testing.T, s *store.Store, scope store.Scope, n int) {
	t.Helper()
	err := s.InTx(t.Context(), func(tx *store.Tx) error {
		for i := range n {
			if _, err := tx.MarkProcessed(t.Context(), scope, fmt.Sprint(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
