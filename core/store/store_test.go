package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

func TestOpenAppliesCoreMigrations(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		v, err := s.SchemaVersion(t.Context(), store.CoreComponent)
		if err != nil {
			t.Fatal(err)
		}
		if v < 1 {
			t.Fatalf("core schema version = %d, want >= 1", v)
		}
	})
}

func TestMarkProcessedFirstAndDuplicate(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		first, err := s.MarkProcessed(ctx, "test", "ev1")
		if err != nil || !first {
			t.Fatalf("first MarkProcessed = %v, %v; want true, nil", first, err)
		}
		first, err = s.MarkProcessed(ctx, "test", "ev1")
		if err != nil || first {
			t.Fatalf("second MarkProcessed = %v, %v; want false, nil", first, err)
		}
		// Same ID in another scope is independent.
		first, err = s.MarkProcessed(ctx, "other", "ev1")
		if err != nil || !first {
			t.Fatalf("other scope MarkProcessed = %v, %v; want true, nil", first, err)
		}
	})
}

func TestKVBasics(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		kv := s.KV("test")
		if _, err := kv.Get(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get missing: err = %v, want ErrNotFound", err)
		}
		v1, err := kv.Put(ctx, "k", []byte("a"))
		if err != nil || v1 != 1 {
			t.Fatalf("Put = %d, %v; want 1, nil", v1, err)
		}
		if _, err := kv.CompareAndSwap(ctx, "k", 0, []byte("x")); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("CAS create on existing key: err = %v, want ErrConflict", err)
		}
		v2, err := kv.CompareAndSwap(ctx, "k", v1, []byte("b"))
		if err != nil || v2 != 2 {
			t.Fatalf("CAS = %d, %v; want 2, nil", v2, err)
		}
		e, err := kv.Get(ctx, "k")
		if err != nil || string(e.Value) != "b" || e.Version != 2 {
			t.Fatalf("Get = %+v, %v; want value b version 2", e, err)
		}
	})
}
