package store

import (
	"context"
	"fmt"
	"sync"
)

// Group commit: concurrent callers of InGroupTx share one database transaction, so a batch of
// them costs one commit (one WAL fsync with synchronous=FULL) instead of one each. Each caller's
// fn runs inside its own savepoint of the shared transaction, so an fn that fails is rolled back
// alone and the others commit; every caller returns only after the shared commit succeeded (or
// with its error), so nothing is reported durable before it is. A caller that arrives while a
// batch is committing waits for the next batch; a caller alone is not delayed.

// maxGroupBatch bounds the callers of one shared transaction.
const maxGroupBatch = 64

// groupCommit holds the callers waiting for the next shared transaction.
type groupCommit struct {
	mu      sync.Mutex
	pending []*groupCall
	running bool
}

type groupCall struct {
	ctx   context.Context
	fn    func(tx *Tx) error
	err   error
	panic any
	done  chan struct{}
}

// InGroupTx runs fn in a read-write transaction shared with other concurrent callers of
// InGroupTx (group commit). Like InTx it returns nil only after the transaction that holds fn's
// writes committed, and fn's error (unwrapped) when fn failed: then fn's writes are rolled back
// (to a savepoint) and the other callers' are not. A commit failure is returned to every caller
// of the batch. A panic in fn is re-raised in its caller. fn must follow InTx's rules (only tx
// inside, short, no network calls) and, since fns of a batch run one after another on one
// connection, must not wait for another caller.
func (s *Store) InGroupTx(ctx context.Context, fn func(tx *Tx) error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	c := &groupCall{ctx: ctx, fn: fn, done: make(chan struct{})}
	g := &s.group
	g.mu.Lock()
	g.pending = append(g.pending, c)
	lead := !g.running
	g.running = true
	g.mu.Unlock()
	if lead {
		s.leadGroup(c)
	}
	<-c.done
	if c.panic != nil {
		panic(c.panic)
	}
	return c.err
}

// leadGroup commits batches of waiting callers until own is done; a goroutine takes over the
// callers still waiting then (own nil: until none is left), so no caller serves others'
// batches for long.
func (s *Store) leadGroup(own *groupCall) {
	for {
		g := &s.group
		g.mu.Lock()
		n := min(len(g.pending), maxGroupBatch)
		if n == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
		batch := g.pending[:n:n]
		g.pending = g.pending[n:]
		g.mu.Unlock()
		s.commitGroup(batch)
		if own == nil {
			continue
		}
		select {
		case <-own.done:
			go s.leadGroup(nil)
			return
		default:
		}
	}
}

// commitGroup runs batch in one transaction, each fn in its savepoint, and settles every call.
func (s *Store) commitGroup(batch []*groupCall) {
	defer func() {
		for _, c := range batch {
			close(c.done)
		}
	}()
	err := s.InTx(context.WithoutCancel(batch[0].ctx), func(tx *Tx) error {
		for i, c := range batch {
			if err := c.ctx.Err(); err != nil {
				c.err = err
				continue
			}
			sp := fmt.Sprintf("group_%d", i)
			if _, err := tx.ExecContext(c.ctx, "SAVEPOINT "+sp); err != nil {
				return fmt.Errorf("store: savepoint: %w", err)
			}
			c.err, c.panic = runGroupFn(c, tx)
			if c.err != nil || c.panic != nil {
				if _, err := tx.ExecContext(c.ctx, "ROLLBACK TO SAVEPOINT "+sp); err != nil {
					return fmt.Errorf("store: rollback to savepoint: %w", err)
				}
			}
			if _, err := tx.ExecContext(c.ctx, "RELEASE SAVEPOINT "+sp); err != nil {
				return fmt.Errorf("store: release savepoint: %w", err)
			}
		}
		if s.beforeGroupCommit != nil {
			s.beforeGroupCommit(len(batch))
		}
		return nil
	})
	if err != nil {
		for _, c := range batch {
			if c.err == nil && c.panic == nil {
				c.err = err
			}
		}
	}
}

// runGroupFn runs c's fn, turning a panic into a value re-raised by its caller.
func runGroupFn(c *groupCall, tx *Tx) (err error, p any) {
	defer func() {
		if r := recover(); r != nil {
			p = r
		}
	}()
	return c.fn(tx), nil
}
