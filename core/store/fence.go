package store

import (
	"context"
	"database/sql"
	"errors"
)

// ErrFenced is returned by a write that a Fence refused: the process no longer holds the lease
// under which it was allowed to write (another replica took over). Nothing of the write was
// committed.
var ErrFenced = errors.New("store: write refused by the fence (the lease was lost)")

// Fence is called inside every read-write transaction, as its last statement before COMMIT,
// and inside the transaction that wraps each autocommit write while a fence is set. A non-nil
// error rolls the transaction back; wrap ErrFenced in it. core/lease's Lease.Fence is one: it
// checks, with a row lock held until the commit, that the process's fencing token is still the
// current one, so a replica that lost its lease (paused past the lease time, cut off) writes
// nothing after the lease's new holder took over.
type Fence func(ctx context.Context, tx *Tx) error

// SetFence sets the fence for every later write of the store (nil removes it). Writes that
// began earlier are not fenced.
func (s *Store) SetFence(f Fence) {
	if f == nil {
		s.fence.Store(nil)
		return
	}
	s.fence.Store(&f)
}

// fenced returns the current fence, or nil.
func (s *Store) fenced() Fence {
	if f := s.fence.Load(); f != nil {
		return *f
	}
	return nil
}

// autocommit runs a write that is a single statement outside a transaction (fn gets the writer),
// or, while a fence is set, inside a transaction that ends with the fence.
func (s *Store) autocommit(ctx context.Context, fn func(q execer) error) error {
	if s.fenced() == nil {
		return fn(s.writer)
	}
	return s.InTx(ctx, func(tx *Tx) error { return fn(tx.tx) })
}

// autocommitResult is autocommit for a statement whose sql.Result the caller needs.
func (s *Store) autocommitResult(ctx context.Context, fn func(q execer) (sql.Result, error)) (sql.Result, error) {
	var res sql.Result
	err := s.autocommit(ctx, func(q execer) error {
		var err error
		res, err = fn(q)
		return err
	})
	return res, err
}
