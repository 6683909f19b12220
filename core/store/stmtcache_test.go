package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// TestStatementCache runs the same statements again and again, in transactions and on the
// reader, and checks every answer; on SQLite the statements end up prepared in the caches and
// the answers stay right, and a text of two statements is never cached yet runs both each time.
func TestStatementCache(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		if err := s.InTx(ctx, func(tx *store.Tx) error {
			if _, err := tx.ExecContext(ctx, `CREATE TABLE stmtcache_t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `CREATE TABLE stmtcache_two (x INTEGER NOT NULL)`)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		const (
			insert  = `INSERT INTO stmtcache_t (id, v) VALUES (?, ?)`
			count   = `SELECT COUNT(*) FROM stmtcache_t`
			byID    = `SELECT v FROM stmtcache_t WHERE id = ?`
			twoRows = `INSERT INTO stmtcache_two (x) VALUES (1); INSERT INTO stmtcache_two (x) VALUES (2)`
		)
		n, twos := 0, 0
		round := func() {
			t.Helper()
			n++
			err := s.InTx(ctx, func(tx *store.Tx) error {
				if _, err := tx.ExecContext(ctx, insert, n, "v"+string(rune('a'+n%26))); err != nil {
					return err
				}
				var got int
				if err := tx.QueryRowContext(ctx, count).Scan(&got); err != nil {
					return err
				}
				if got != n {
					t.Errorf("round %d: count in the transaction %d", n, got)
				}
				rows, err := tx.QueryContext(ctx, byID, n)
				if err != nil {
					return err
				}
				defer rows.Close()
				if !rows.Next() {
					t.Errorf("round %d: row not found in the transaction", n)
				}
				return rows.Err()
			})
			if err != nil {
				t.Fatalf("round %d: %v", n, err)
			}
			if s.Dialect() == store.SQLite {
				if err := s.InTx(ctx, func(tx *store.Tx) error {
					_, err := tx.ExecContext(ctx, twoRows)
					return err
				}); err != nil {
					t.Fatalf("round %d: two statements: %v", n, err)
				}
				twos += 2
			}
			var got int
			if err := s.QueryRowContext(ctx, count).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != n {
				t.Errorf("round %d: count on the reader %d", n, got)
			}
			var v string
			if err := s.QueryRowContext(ctx, byID, n).Scan(&v); err != nil || v != "v"+string(rune('a'+n%26)) {
				t.Errorf("round %d: reader read %q, %v", n, v, err)
			}
		}
		for range 5 {
			round()
		}
		if s.Dialect() != store.SQLite {
			return
		}
		deadline := time.Now().Add(10 * time.Second)
		for !(store.StatementCached(s, insert, true) && store.StatementCached(s, count, true) &&
			store.StatementCached(s, byID, true) && store.StatementCached(s, count, false) &&
			store.StatementCached(s, byID, false)) {
			if time.Now().After(deadline) {
				t.Fatal("the statements were not prepared in the caches")
			}
			round() // the cache prepares in the background; keep using the statements meanwhile
		}
		for range 20 {
			round()
		}
		if store.StatementCached(s, twoRows, true) {
			t.Error("a text of two statements was cached")
		}
		var rows int
		if err := s.QueryRowContext(ctx, `SELECT COUNT(*) FROM stmtcache_two`).Scan(&rows); err != nil || rows != twos {
			t.Errorf("two statements per round: %d rows, want %d (%v)", rows, twos, err)
		}
	})
}
