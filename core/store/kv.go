package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// KVEntry is a stored value with its version.
type KVEntry struct {
	// Value is the stored bytes (never nil for a found entry).
	Value []byte
	// Version starts at 1 when the key is created and grows by one with
	// every Put or CompareAndSwap. It restarts at 1 if the key is deleted
	// and created again.
	Version int64
	// UpdatedAt is when the entry was last written (millisecond precision).
	UpdatedAt time.Time
}

// KV is a small key-value namespace (one Scope) in the store's store_kv
// table, for settings and cursors such as a Matrix sync token or a consumer
// checkpoint. It is not for bulk data: values are limited to MaxValueLen.
// A KV from (*Store).KV runs each call in its own statement; a KV from
// (*Tx).KV runs inside that transaction.
type KV struct {
	s     *Store
	tx    *Tx
	scope Scope
}

// KV returns the key-value namespace scope outside any transaction.
func (s *Store) KV(scope Scope) *KV { return &KV{s: s, scope: scope} }

// KV returns the key-value namespace scope inside the transaction.
func (t *Tx) KV(scope Scope) *KV { return &KV{s: t.s, tx: t, scope: scope} }

func (kv *KV) readQ() execer {
	if kv.tx != nil {
		return kv.tx.tx
	}
	return kv.s.reader
}

// fencedOutsideTx reports whether a write of kv must run in its own transaction for the fence.
func (kv *KV) fencedOutsideTx() bool { return kv.tx == nil && kv.s.fenced() != nil }

func (kv *KV) writeQ() execer {
	if kv.tx != nil {
		return kv.tx.tx
	}
	return kv.s.writer
}

func (kv *KV) check(key string) error {
	if kv.tx == nil && kv.s.closed.Load() {
		return ErrClosed
	}
	if err := checkText("kv scope", string(kv.scope), MaxScopeLen); err != nil {
		return err
	}
	return checkText("kv key", key, MaxKeyLen)
}

func checkValue(v []byte) error {
	if len(v) > MaxValueLen {
		return fmt.Errorf("%w: kv value is %d bytes, limit %d", ErrInvalidArgument, len(v), MaxValueLen)
	}
	return nil
}

// Get returns the entry for key, or ErrNotFound.
func (kv *KV) Get(ctx context.Context, key string) (KVEntry, error) {
	if err := kv.check(key); err != nil {
		return KVEntry{}, err
	}
	var e KVEntry
	var at int64
	err := kv.readQ().QueryRowContext(ctx, kv.s.Rebind(
		`SELECT value, version, updated_at FROM store_kv WHERE scope = ? AND key = ?`),
		string(kv.scope), key).Scan(&e.Value, &e.Version, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return KVEntry{}, fmt.Errorf("store: kv %s/%q: %w", kv.scope, key, ErrNotFound)
	}
	if err != nil {
		return KVEntry{}, fmt.Errorf("store: kv get %s: %w", kv.scope, err)
	}
	if e.Value, err = kv.s.Unseal(kvValue, e.Value, string(kv.scope), key); err != nil {
		return KVEntry{}, fmt.Errorf("store: kv get %s: %w", kv.scope, err)
	}
	if e.Value == nil {
		e.Value = []byte{}
	}
	e.UpdatedAt = time.UnixMilli(at)
	return e, nil
}

// Keys returns the keys of the namespace in key order.
func (kv *KV) Keys(ctx context.Context) ([]string, error) {
	if kv.tx == nil && kv.s.closed.Load() {
		return nil, ErrClosed
	}
	if err := checkText("kv scope", string(kv.scope), MaxScopeLen); err != nil {
		return nil, err
	}
	rows, err := kv.readQ().QueryContext(ctx, kv.s.Rebind(`SELECT key FROM store_kv WHERE scope = ? ORDER BY key`), string(kv.scope))
	if err != nil {
		return nil, fmt.Errorf("store: kv keys %s: %w", kv.scope, err)
	}
	defer rows.Close()
	var keys []string
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("store: kv keys %s: %w", kv.scope, err)
		}
		keys = append(keys, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: kv keys %s: %w", kv.scope, err)
	}
	return keys, nil
}

// Put stores value under key unconditionally and returns the new version.
func (kv *KV) Put(ctx context.Context, key string, value []byte) (int64, error) {
	if kv.fencedOutsideTx() {
		var v int64
		err := kv.s.InTx(ctx, func(tx *Tx) (err error) { v, err = tx.KV(kv.scope).Put(ctx, key, value); return err })
		return v, err
	}
	if err := kv.check(key); err != nil {
		return 0, err
	}
	if err := checkValue(value); err != nil {
		return 0, err
	}
	sealed, err := kv.s.Seal(kvValue, value, string(kv.scope), key)
	if err != nil {
		return 0, fmt.Errorf("store: kv put %s: %w", kv.scope, err)
	}
	var v int64
	err = kv.writeQ().QueryRowContext(ctx, kv.s.Rebind(
		`INSERT INTO store_kv (scope, key, value, version, updated_at) VALUES (?, ?, ?, 1, ?)
		 ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value, version = store_kv.version + 1, updated_at = excluded.updated_at
		 RETURNING version`),
		string(kv.scope), key, sealed, kv.s.nowMillis()).Scan(&v)
	if err != nil {
		kv.s.metrics.observeErr(err)
		return 0, fmt.Errorf("store: kv put %s: %w", kv.scope, err)
	}
	return v, nil
}

// CompareAndSwap stores value under key only if the key's current version is
// expected, and returns the new version. expected == 0 means "the key must
// not exist" (create). On mismatch it returns ErrConflict and changes
// nothing; re-read with Get and retry.
func (kv *KV) CompareAndSwap(ctx context.Context, key string, expected int64, value []byte) (int64, error) {
	if kv.fencedOutsideTx() {
		var v int64
		err := kv.s.InTx(ctx, func(tx *Tx) (err error) {
			v, err = tx.KV(kv.scope).CompareAndSwap(ctx, key, expected, value)
			return err
		})
		return v, err
	}
	if err := kv.check(key); err != nil {
		return 0, err
	}
	if err := checkValue(value); err != nil {
		return 0, err
	}
	if expected < 0 {
		return 0, fmt.Errorf("%w: negative expected version %d", ErrInvalidArgument, expected)
	}
	sealed, err := kv.s.Seal(kvValue, value, string(kv.scope), key)
	if err != nil {
		return 0, fmt.Errorf("store: kv compare-and-swap %s: %w", kv.scope, err)
	}
	var (
		q    string
		args []any
	)
	if expected == 0 {
		q = `INSERT INTO store_kv (scope, key, value, version, updated_at) VALUES (?, ?, ?, 1, ?)
		     ON CONFLICT (scope, key) DO NOTHING RETURNING version`
		args = []any{string(kv.scope), key, sealed, kv.s.nowMillis()}
	} else {
		q = `UPDATE store_kv SET value = ?, version = version + 1, updated_at = ?
		     WHERE scope = ? AND key = ? AND version = ? RETURNING version`
		args = []any{sealed, kv.s.nowMillis(), string(kv.scope), key, expected}
	}
	var v int64
	err = kv.writeQ().QueryRowContext(ctx, kv.s.Rebind(q), args...).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		kv.s.metrics.observeCASConflict()
		return 0, fmt.Errorf("store: kv %s/%q expected version %d: %w", kv.scope, key, expected, ErrConflict)
	}
	if err != nil {
		kv.s.metrics.observeErr(err)
		return 0, fmt.Errorf("store: kv compare-and-swap %s: %w", kv.scope, err)
	}
	return v, nil
}

// Delete removes key. It reports whether the key existed; deleting a missing
// key is not an error.
func (kv *KV) Delete(ctx context.Context, key string) (bool, error) {
	if kv.fencedOutsideTx() {
		var ok bool
		err := kv.s.InTx(ctx, func(tx *Tx) (err error) { ok, err = tx.KV(kv.scope).Delete(ctx, key); return err })
		return ok, err
	}
	if err := kv.check(key); err != nil {
		return false, err
	}
	res, err := kv.writeQ().ExecContext(ctx, kv.s.Rebind(
		`DELETE FROM store_kv WHERE scope = ? AND key = ?`), string(kv.scope), key)
	if err != nil {
		kv.s.metrics.observeErr(err)
		return false, fmt.Errorf("store: kv delete %s: %w", kv.scope, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: kv delete %s: rows affected: %w", kv.scope, err)
	}
	return n > 0, nil
}

// CompareAndDelete removes key only if its current version is expected;
// otherwise (including a missing key) it returns ErrConflict.
func (kv *KV) CompareAndDelete(ctx context.Context, key string, expected int64) error {
	if kv.fencedOutsideTx() {
		return kv.s.InTx(ctx, func(tx *Tx) error { return tx.KV(kv.scope).CompareAndDelete(ctx, key, expected) })
	}
	if err := kv.check(key); err != nil {
		return err
	}
	res, err := kv.writeQ().ExecContext(ctx, kv.s.Rebind(
		`DELETE FROM store_kv WHERE scope = ? AND key = ? AND version = ?`), string(kv.scope), key, expected)
	if err != nil {
		kv.s.metrics.observeErr(err)
		return fmt.Errorf("store: kv compare-and-delete %s: %w", kv.scope, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store: kv compare-and-delete %s: rows affected: %w", kv.scope, err)
	}
	if n == 0 {
		kv.s.metrics.observeCASConflict()
		return fmt.Errorf("store: kv %s/%q expected version %d: %w", kv.scope, key, expected, ErrConflict)
	}
	return nil
}
