package store_test

import (
	"errors"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// benchEach runs fn per backend with a fresh store.
func benchEach(b *testing.B, fn func(b *testing.B, s *store.Store)) {
	for _, be := range storetest.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			fn(b, storetest.Open(b, be.Config(b)))
		})
	}
}

// BenchmarkApplyAndMark is the consumer's hot path: one transaction that
// marks an event processed and writes a small row.
func BenchmarkApplyAndMark(b *testing.B) {
	benchEach(b, func(b *testing.B, s *store.Store) {
		ctx := b.Context()
		value := make([]byte, 256)
		i := 0
		for b.Loop() {
			i++
			id := strconv.Itoa(i)
			err := s.InTx(ctx, func(tx *store.Tx) error {
				first, err := tx.MarkProcessed(ctx, "bench", id)
				if err != nil || !first {
					return errors.Join(err, errors.New("not first"))
				}
				_, err = tx.KV("bench").Put(ctx, "last", value)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkMarkProcessedParallel measures autocommit MarkProcessed from
// GOMAXPROCS goroutines (on SQLite all queue for the one writer).
func BenchmarkMarkProcessedParallel(b *testing.B) {
	benchEach(b, func(b *testing.B, s *store.Store) {
		ctx := b.Context()
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.MarkProcessed(ctx, "bench", strconv.FormatInt(n.Add(1), 10)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkKVCompareAndSwap measures sequential compare-and-swap of a 1 KiB
// value on one key (the shape of an epoch compare-and-set).
func BenchmarkKVCompareAndSwap(b *testing.B) {
	benchEach(b, func(b *testing.B, s *store.Store) {
		ctx := b.Context()
		kv := s.KV("bench")
		value := make([]byte, 1024)
		var ver int64
		for b.Loop() {
			v, err := kv.CompareAndSwap(ctx, "k", ver, value)
			if err != nil {
				b.Fatal(err)
			}
			ver = v
		}
	})
}

// BenchmarkKVGetParallel measures concurrent reads outside transactions
// (SQLite: the reader pool).
func BenchmarkKVGetParallel(b *testing.B) {
	benchEach(b, func(b *testing.B, s *store.Store) {
		ctx := b.Context()
		kv := s.KV("bench")
		if _, err := kv.Put(ctx, "k", make([]byte, 1024)); err != nil {
			b.Fatal(err)
		}
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := kv.Get(ctx, "k"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
