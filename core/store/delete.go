package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// deleteBatch bounds how many rows one statement of DeleteWhere removes, so that the SQLite
// writer is never held for long.
const deleteBatch = 500

// DeleteWhere deletes the rows of table that match where (a condition with '?' placeholders and
// args), in batches of a few hundred rows located by the key columns, and returns how many it
// deleted. Table and key names must be plain identifiers; where is SQL written by the caller,
// never built from input. Retention sweeps and erasure use it.
func (s *Store) DeleteWhere(ctx context.Context, table string, key []string, where string, args ...any) (int64, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	for _, n := range append([]string{table}, key...) {
		if !identRe.MatchString(n) {
			return 0, fmt.Errorf("%w: %q is not a plain identifier", ErrInvalidArgument, n)
		}
	}
	if len(key) == 0 {
		return 0, fmt.Errorf("%w: delete from %s: no key columns", ErrInvalidArgument, table)
	}
	cols := strings.Join(key, ", ")
	q := s.Rebind(`DELETE FROM ` + table + ` WHERE (` + cols + `) IN (SELECT ` + cols + ` FROM ` + table + ` WHERE ` + where + ` LIMIT ?)`)
	args = append(args, deleteBatch)
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		res, err := s.autocommitResult(ctx, func(w execer) (sql.Result, error) { return w.ExecContext(ctx, q, args...) })
		if err != nil {
			s.metrics.observeErr(err)
			return total, fmt.Errorf("store: delete from %s: %w", table, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("store: delete from %s: rows affected: %w", table, err)
		}
		total += n
		if n < deleteBatch {
			return total, nil
		}
	}
}
