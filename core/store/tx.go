package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Querier is what both *Store and *Tx offer: statements with '?'
// placeholders, rebound for the dialect. Write helpers against Querier to
// use them inside or outside a transaction.
type Querier interface {
	// ExecContext runs a statement that returns no rows.
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	// QueryContext runs a statement that returns rows.
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	// QueryRowContext runs a statement that returns at most one row.
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	// Dialect returns the backend's dialect.
	Dialect() Dialect
	// Seal encrypts a value of a sealed column for one row (see SealedColumn).
	Seal(c SealedColumn, plaintext []byte, bind ...string) ([]byte, error)
	// Unseal decrypts a value that Seal produced for the same column and row.
	Unseal(c SealedColumn, sealed []byte, bind ...string) ([]byte, error)
}

// Compile-time interface guards.
var (
	_ Querier = (*Store)(nil)
	_ Querier = (*Tx)(nil)
)

// Tx is a transaction started by InTx. Its methods take '?' placeholders.
// A Tx must not be used after the InTx callback returns, nor from several
// goroutines at once.
type Tx struct {
	tx *sql.Tx
	s  *Store
}

// Dialect returns the backend's dialect.
func (t *Tx) Dialect() Dialect { return t.s.dialect }

// SQL returns the underlying *sql.Tx for code that builds its own
// statements; it then has to use Rebind itself.
func (t *Tx) SQL() *sql.Tx { return t.tx }

// Rebind rewrites '?' placeholders for the dialect.
func (t *Tx) Rebind(query string) string { return Rebind(t.s.dialect, query) }

// ExecContext runs a statement that returns no rows.
func (t *Tx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.s.writerStmts.get(query); st != nil {
		return t.tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, t.Rebind(query), args...)
}

// QueryContext runs a statement that returns rows (including writes with
// RETURNING).
func (t *Tx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.s.writerStmts.get(query); st != nil {
		return t.tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, t.Rebind(query), args...)
}

// QueryRowContext runs a statement that returns at most one row.
func (t *Tx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.s.writerStmts.get(query); st != nil {
		return t.tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, t.Rebind(query), args...)
}

// InTx runs fn in a read-write transaction. It commits when fn returns nil
// and rolls back when fn returns an error or panics (the panic is re-raised).
// The error from fn is returned unwrapped, so callers can test it with
// errors.Is; commit failures are wrapped.
//
// On SQLite all transactions of the process are serialised through the one
// writer connection (BEGIN IMMEDIATE), so they never fail with SQLITE_BUSY;
// keep them short and never call network services inside fn. Inside fn use
// only tx: calling the Store's own methods or DB() from fn on SQLite waits for
// the connection fn holds (a deadlock until ctx ends).
//
// On PostgreSQL the isolation level is the server default (READ COMMITTED);
// use row locks (SELECT ... FOR UPDATE) or conditional updates
// (UPDATE ... WHERE version = ?) for compare-and-set.
func (s *Store) InTx(ctx context.Context, fn func(tx *Tx) error) (err error) {
	return s.InTxOptions(ctx, nil, fn)
}

// InTxOptions is InTx with explicit transaction options. On SQLite,
// transactions are always serializable, and a ReadOnly transaction runs on
// the query_only reader pool: it sees one consistent snapshot, refuses
// writes, and does not hold the writer connection.
func (s *Store) InTxOptions(ctx context.Context, opts *sql.TxOptions, fn func(tx *Tx) error) (err error) {
	if s.closed.Load() {
		return ErrClosed
	}
	start := time.Now()
	db := s.writer
	if opts != nil && opts.ReadOnly && s.dialect == SQLite {
		// SQLite ignores the read-only flag; run read-only transactions on
		// the query_only reader pool, which also leaves the writer free.
		db = s.reader
	}
	stx, err := db.BeginTx(ctx, opts)
	if err != nil {
		s.metrics.observeTx(txResultBeginError, time.Since(start), err)
		return fmt.Errorf("store: begin transaction: %w", err)
	}
	committed := false
	defer func() {
		if committed {
			return
		}
		rbErr := stx.Rollback()
		if p := recover(); p != nil {
			s.metrics.observeTx(txResultRollback, time.Since(start), nil)
			panic(p)
		}
		if rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
			s.log.Warn("rollback failed", "err", rbErr)
		}
		s.metrics.observeTx(txResultRollback, time.Since(start), err)
	}()
	tx := &Tx{tx: stx, s: s}
	if err = fn(tx); err != nil {
		return err
	}
	if f := s.fenced(); f != nil && (opts == nil || !opts.ReadOnly) {
		if err = f(ctx, tx); err != nil {
			return err
		}
	}
	if err = stx.Commit(); err != nil {
		err = fmt.Errorf("store: commit: %w", err)
		return err
	}
	committed = true
	s.metrics.observeTx(txResultCommit, time.Since(start), nil)
	return nil
}
