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

// TestIsRetryableSerializationFailure provokes a PostgreSQL serialization
// failure between two SERIALIZABLE transactions.
func TestIsRetryableSerializationFailure(t *testing.T) {
	s := storetest.Open(t, storetest.PostgresConfig(t))
	ctx := t.Context()
	kv := s.KV("ser")
	if _, err := kv.Put(ctx, "k", []byte("0")); err != nil {
		t.Fatal(err)
	}
	serializable := &sql.TxOptions{Isolation: sql.LevelSerializable}
	read := make(chan struct{})
	otherDone := make(chan error, 1)
	go func() {
		<-read
		otherDone <- s.InTxOptions(ctx, serializable, func(tx *store.Tx) error {
			if _, err := tx.KV("ser").Get(ctx, "k"); err != nil {
				return err
			}
			_, err := tx.KV("ser").Put(ctx, "k", []byte("other"))
			return err
		})
	}()
	err := s.InTxOptions(ctx, serializable, func(tx *store.Tx) error {
		if _, err := tx.KV("ser").Get(ctx, "k"); err != nil {
			return err
		}
		close(read)
		if err := <-otherDone; err != nil {
			return err
		}
		_, err := tx.KV("ser").Put(ctx, "k", []byte("mine"))
		return err
	})
	if !store.IsRetryable(err) {
		t.Fatalf("err = %v, want a retryable serialization failure", err)
	}
	if store.IsRetryable(errors.New("other")) || store.IsRetryable(nil) || store.IsRetryable(store.ErrConflict) {
		t.Fatal("IsRetryable matched a non-retryable error")
	}
}
