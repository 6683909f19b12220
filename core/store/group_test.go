package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
	"github.com/mimi-gateway/mimi-gateway/core/testwait"
)

// TestInGroupTx holds a first caller's transaction open until nine more callers wait, so that
// they share the next transaction: the ten commit in two transactions; of the nine, a failing
// caller's and a panicking caller's writes are rolled back alone and each gets its own error or
// panic, and a caller whose context ended is not run.
func TestInGroupTx(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		if _, err := s.ExecContext(ctx, `CREATE TABLE group_t (k TEXT PRIMARY KEY)`); err != nil {
			t.Fatal(err)
		}
		insert := func(tx *store.Tx, k string) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO group_t (k) VALUES (?)`, k)
			return err
		}
		commits0 := metricValue(t, s, "mimi_gateway_store_transactions_total", "result", "commit")
		errBad := errors.New("bad")
		first, started := make(chan error, 1), make(chan struct{})
		go func() {
			first <- s.InGroupTx(ctx, func(tx *store.Tx) error {
				close(started)
				if err := insert(tx, "first"); err != nil {
					return err
				}
				waitUntil(t, "nine callers waiting", func() bool { return store.GroupWaiting(s) == 9 })
				return nil
			})
		}()
		<-started
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		results := make([]error, 9)
		panics := make([]any, 9)
		var wg sync.WaitGroup
		for i := range 9 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { panics[i] = recover() }()
				k := fmt.Sprint("k", i)
				c := ctx
				if i == 8 {
					c = cancelled
				}
				results[i] = s.InGroupTx(c, func(tx *store.Tx) error {
					if err := insert(tx, k); err != nil {
						return err
					}
					switch i {
					case 3:
						return errBad
					case 5:
						panic("fn 5")
					}
					return nil
				})
			}()
		}
		wg.Wait()
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		for i := range 9 {
			switch {
			case i == 3 && !errors.Is(results[i], errBad):
				t.Errorf("caller 3: %v, want its own error", results[i])
			case i == 5 && panics[i] != "fn 5":
				t.Errorf("caller 5: panic %v", panics[i])
			case i == 8 && !errors.Is(results[i], context.Canceled):
				t.Errorf("caller 8: %v, want context.Canceled", results[i])
			case i != 3 && i != 5 && i != 8 && (results[i] != nil || panics[i] != nil):
				t.Errorf("caller %d: %v %v", i, results[i], panics[i])
			}
		}
		rows, err := s.QueryContext(ctx, `SELECT k FROM group_t ORDER BY k`)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				t.Fatal(err)
			}
			got = append(got, k)
		}
		rows.Close()
		if want := "[first k0 k1 k2 k4 k6 k7]"; fmt.Sprint(got) != want {
			t.Fatalf("rows %v, want %s", got, want)
		}
		if n := metricValue(t, s, "mimi_gateway_store_transactions_total", "result", "commit") - commits0; n != 2 {
			t.Fatalf("%v commits for ten callers, want 2", n)
		}
	})
}

// TestInGroupTxCommitFailure makes the shared commit fail (a deferred foreign-key violation on
// PostgreSQL, checked at commit): every caller of the batch gets the error and nothing is kept.
func TestInGroupTxCommitFailure(t *testing.T) {
	s := storetest.Open(t, storetest.PostgresConfig(t))
	ctx := context.Background()
	for _, q := range []string{
		`CREATE TABLE group_parent (k TEXT PRIMARY KEY)`,
		`CREATE TABLE group_child (k TEXT REFERENCES group_parent (k) DEFERRABLE INITIALLY DEFERRED)`,
	} {
		if _, err := s.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	release, started := make(chan struct{}), make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- s.InGroupTx(ctx, func(tx *store.Tx) error {
			close(started)
			<-release
			return nil
		})
	}()
	<-started
	errs := make(chan error, 2)
	for i, q := range []string{`INSERT INTO group_parent (k) VALUES ('ok')`, `INSERT INTO group_child (k) VALUES ('missing')`} {
		go func() {
			errs <- s.InGroupTx(ctx, func(tx *store.Tx) error {
				_, err := tx.ExecContext(ctx, q)
				return err
			})
		}()
		waitUntil(t, fmt.Sprint(i+1, " callers waiting"), func() bool { return store.GroupWaiting(s) == i+1 })
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errs; err == nil {
			t.Fatal("a caller of a failed commit got nil")
		}
	}
	var n int
	if err := s.QueryRowContext(ctx, `SELECT COUNT(*) FROM group_parent`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d rows kept after the failed commit (%v)", n, err)
	}
}

// waitUntil polls cond until it holds, failing after a generous deadline (30 s scaled for the
// machine, testwait.Scale).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testwait.Scale(30 * time.Second))
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached", what)
		}
		time.Sleep(time.Millisecond)
	}
}
