package store_test

import (
	"database/sql"
	"errors"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

func TestInTxOptions(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		if _, err := s.KV("o").Put(ctx, "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
		// Serializable works on both backends.
		err := s.InTxOptions(ctx, &sql.TxOptions{Isolation: sql.LevelSerializable}, func(tx *store.Tx) error {
			_, err := tx.KV("o").Put(ctx, "k", []byte("w"))
			return err
		})
		if err != nil {
			t.Fatalf("serializable: %v", err)
		}
		// Read-only transactions read but refuse writes.
		err = s.InTxOptions(ctx, &sql.TxOptions{ReadOnly: true}, func(tx *store.Tx) error {
			e, err := tx.KV("o").Get(ctx, "k")
			if err != nil {
				return err
			}
			if string(e.Value) != "w" {
				t.Errorf("read %q", e.Value)
			}
			if _, err := tx.KV("o").Put(ctx, "k", []byte("x")); err == nil {
				t.Error("write in a read-only transaction succeeded")
			}
			return errors.New("done")
		})
		if err == nil || err.Error() != "done" {
			t.Fatalf("read-only: %v", err)
		}
	})
}
