package store_test

import (
	"context"
	"testing"

	"go.mau.fi/util/dbutil"

	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// TestDBUtilWrapsStoreDB checks the documented way for the Matrix crypto
// store to share the database: go.mau.fi/util/dbutil over Store.DB().
func TestDBUtilWrapsStoreDB(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		dialect := "sqlite3"
		if s.Dialect() == store.Postgres {
			dialect = "postgres"
		}
		db, err := dbutil.NewWithDB(s.DB(), dialect)
		if err != nil {
			t.Fatal(err)
		}
		ctx := t.Context()
		if _, err := db.Exec(ctx, `CREATE TABLE crypto_probe (id INTEGER PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		err = db.DoTxn(ctx, nil, func(ctx context.Context) error {
			// dbutil routes this through the transaction carried by ctx.
			_, err := db.Exec(ctx, `INSERT INTO crypto_probe (id, v) VALUES ($1, $2)`, 1, "x")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		var v string
		if err := s.QueryRowContext(ctx, `SELECT v FROM crypto_probe WHERE id = ?`, 1).Scan(&v); err != nil || v != "x" {
			t.Fatalf("store sees %q, %v", v, err)
		}
	})
}
