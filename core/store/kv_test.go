package store_test

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

func TestKVCompareAndSwapConflicts(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		kv := s.KV("cas")
		steps := []struct {
			name     string
			op       func() (int64, error)
			wantVer  int64
			wantErr  error
			wantVal  string // "" means the key must be absent afterwards
			absentOK bool
		}{
			{"create", func() (int64, error) { return kv.CompareAndSwap(ctx, "k", 0, []byte("v1")) }, 1, nil, "v1", false},
			{"create again conflicts", func() (int64, error) { return kv.CompareAndSwap(ctx, "k", 0, []byte("x")) }, 0, store.ErrConflict, "v1", false},
			{"stale version conflicts", func() (int64, error) { return kv.CompareAndSwap(ctx, "k", 7, []byte("x")) }, 0, store.ErrConflict, "v1", false},
			{"right version", func() (int64, error) { return kv.CompareAndSwap(ctx, "k", 1, []byte("v2")) }, 2, nil, "v2", false},
			{"old version now stale", func() (int64, error) { return kv.CompareAndSwap(ctx, "k", 1, []byte("x")) }, 0, store.ErrConflict, "v2", false},
			{"put bumps", func() (int64, error) { return kv.Put(ctx, "k", []byte("v3")) }, 3, nil, "v3", false},
			{"compare-and-delete stale", func() (int64, error) { return 0, kv.CompareAndDelete(ctx, "k", 2) }, 0, store.ErrConflict, "v3", false},
			{"compare-and-delete", func() (int64, error) { return 0, kv.CompareAndDelete(ctx, "k", 3) }, 0, nil, "", true},
			{"compare-and-delete missing", func() (int64, error) { return 0, kv.CompareAndDelete(ctx, "k", 3) }, 0, store.ErrConflict, "", true},
			{"update missing conflicts", func() (int64, error) { return kv.CompareAndSwap(ctx, "k", 3, []byte("x")) }, 0, store.ErrConflict, "", true},
			{"recreate restarts at 1", func() (int64, error) { return kv.CompareAndSwap(ctx, "k", 0, []byte("v4")) }, 1, nil, "v4", false},
			{"negative version", func() (int64, error) { return kv.CompareAndSwap(ctx, "k", -1, []byte("x")) }, 0, store.ErrInvalidArgument, "v4", false},
		}
		for _, st := range steps {
			v, err := st.op()
			if !errors.Is(err, st.wantErr) || (st.wantErr == nil && err != nil) {
				t.Fatalf("%s: err = %v, want %v", st.name, err, st.wantErr)
			}
			if v != st.wantVer {
				t.Fatalf("%s: version = %d, want %d", st.name, v, st.wantVer)
			}
			e, err := kv.Get(ctx, "k")
			if st.absentOK {
				if !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("%s: Get err = %v, want ErrNotFound", st.name, err)
				}
				continue
			}
			if err != nil || string(e.Value) != st.wantVal {
				t.Fatalf("%s: Get = %q, %v; want %q", st.name, e.Value, err, st.wantVal)
			}
		}
	})
}

func TestKVScopesDeleteAndValues(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		a, b := s.KV("a"), s.KV("b")
		if _, err := a.Put(ctx, "k", []byte("in a")); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Get(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("scope b sees scope a's key: %v", err)
		}
		// Binary values, empty values and nil round-trip.
		bin := []byte{0, 1, 2, 0xff, 0xfe, 0}
		for _, v := range [][]byte{bin, {}, nil, bytes.Repeat([]byte{7}, store.MaxValueLen)} {
			if _, err := b.Put(ctx, "v", v); err != nil {
				t.Fatal(err)
			}
			e, err := b.Get(ctx, "v")
			if err != nil || !bytes.Equal(e.Value, v) || e.Value == nil {
				t.Fatalf("round-trip of %d bytes: got %d bytes (nil=%v), %v", len(v), len(e.Value), e.Value == nil, err)
			}
			if e.UpdatedAt.IsZero() {
				t.Fatal("UpdatedAt not set")
			}
		}
		existed, err := a.Delete(ctx, "k")
		if err != nil || !existed {
			t.Fatalf("Delete = %v, %v", existed, err)
		}
		existed, err = a.Delete(ctx, "k")
		if err != nil || existed {
			t.Fatalf("second Delete = %v, %v", existed, err)
		}
	})
}

func TestKVLimits(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		cases := []struct {
			name  string
			scope store.Scope
			key   string
			value []byte
		}{
			{"empty scope", "", "k", nil},
			{"empty key", "s", "", nil},
			{"long key", "s", strings.Repeat("k", store.MaxKeyLen+1), nil},
			{"nul key", "s", "a\x00b", nil},
			{"value too large", "s", "k", make([]byte, store.MaxValueLen+1)},
		}
		for _, c := range cases {
			if _, err := s.KV(c.scope).Put(ctx, c.key, c.value); !errors.Is(err, store.ErrInvalidArgument) {
				t.Errorf("%s: Put err = %v, want ErrInvalidArgument", c.name, err)
			}
			if _, err := s.KV(c.scope).CompareAndSwap(ctx, c.key, 0, c.value); !errors.Is(err, store.ErrInvalidArgument) {
				t.Errorf("%s: CAS err = %v, want ErrInvalidArgument", c.name, err)
			}
		}
	})
}

// TestKVConcurrentCASNoLostUpdates runs optimistic read-CAS-retry loops from
// several goroutines: every increment must land exactly once.
func TestKVConcurrentCASNoLostUpdates(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		kv := s.KV("cas")
		const workers, increments = 6, 25
		var wg sync.WaitGroup
		var conflicts sync.Map
		errs := make(chan error, workers)
		for w := range workers {
			wg.Go(func() {
				for range increments {
					for {
						e, err := kv.Get(ctx, "ctr")
						var ver int64
						var n int
						switch {
						case errors.Is(err, store.ErrNotFound):
						case err != nil:
							errs <- err
							return
						default:
							ver, n = e.Version, len(e.Value)
						}
						_, err = kv.CompareAndSwap(ctx, "ctr", ver, bytes.Repeat([]byte{'x'}, n+1))
						if errors.Is(err, store.ErrConflict) {
							conflicts.Store(w, true)
							continue
						}
						if err != nil {
							errs <- err
							return
						}
						break
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		e, err := kv.Get(ctx, "ctr")
		if err != nil || len(e.Value) != workers*increments || e.Version != workers*increments {
			t.Fatalf("counter = %d bytes version %d, %v; want %d", len(e.Value), e.Version, err, workers*increments)
		}
		t.Logf("%s: conflicts seen and retried: %v", s.Dialect(), metricValue(t, s, "mimi_gateway_store_kv_cas_conflicts_total"))
	})
}

// TestKVKeys: Keys lists one namespace's keys in key order, not another's, also inside a
// transaction (where it sees the transaction's own writes).
func TestKVKeys(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		for _, k := range []string{"b", "c", "a"} {
			if _, err := s.KV("keys").Put(ctx, k, []byte(k)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.KV("other").Put(ctx, "x", nil); err != nil {
			t.Fatal(err)
		}
		if got, err := s.KV("keys").Keys(ctx); err != nil || strings.Join(got, ",") != "a,b,c" {
			t.Fatalf("Keys = %v, %v; want [a b c]", got, err)
		}
		if got, err := s.KV("none").Keys(ctx); err != nil || len(got) != 0 {
			t.Fatalf("Keys of an empty namespace = %v, %v", got, err)
		}
		err := s.InTx(ctx, func(tx *store.Tx) error {
			if _, err := tx.KV("keys").Put(ctx, "d", nil); err != nil {
				return err
			}
			got, err := tx.KV("keys").Keys(ctx)
			if err != nil || strings.Join(got, ",") != "a,b,c,d" {
				t.Errorf("Keys in the transaction = %v, %v; want [a b c d]", got, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}
