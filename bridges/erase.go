package bridges

import (
	"context"
	"fmt"
	"strings"

	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// Erasure deletes and rewrites what an adapter's tables (and the tables of the libraries it
// keeps in the gateway's store) hold about one user, and counts the rows it deleted or changed:
// an adapter's EraseUser is the list of its steps. A table that does not exist (a library's,
// before the adapter first ran) has nothing to erase. After the first error, steps do nothing,
// and Result returns it.
type Erasure struct {
	st    *store.Store
	what  string
	total int64
	err   error
}

// NewErasure returns an erasure in st whose errors start with what (e.g. "matrix: erase").
func NewErasure(st *store.Store, what string) *Erasure { return &Erasure{st: st, what: what} }

// Result is the number of rows deleted or changed, and the first error.
func (e *Erasure) Result() (int64, error) { return e.total, e.err }

// Add counts the result of a step the adapter does itself.
func (e *Erasure) Add(n int64, err error) {
	e.total += n
	if err != nil && e.err == nil {
		e.err = err
	}
}

func (e *Erasure) fail(step string, err error) {
	if err != nil && !missingTable(err) {
		e.Add(0, fmt.Errorf("%s: %s: %w", e.what, step, err))
	}
}

// Delete deletes the rows of table (keyed by key) that match where (store.DeleteWhere).
func (e *Erasure) Delete(ctx context.Context, table string, key []string, where string, args ...any) {
	if e.err != nil {
		return
	}
	n, err := e.st.DeleteWhere(ctx, table, key, where, args...)
	e.total += n
	e.fail(table, err)
}

// Exec runs a DELETE or UPDATE statement and counts the rows it changed.
func (e *Erasure) Exec(ctx context.Context, query string, args ...any) {
	if e.err != nil {
		return
	}
	res, err := e.st.ExecContext(ctx, query, args...)
	if err != nil {
		e.fail(query, err)
		return
	}
	if n, err := res.RowsAffected(); err == nil {
		e.total += n
	}
}

// Rewrite passes column col of every row of table where it is not NULL to fn, and stores the new
// value fn returns (nil: NULL) where fn reports a change. key is the table's key column.
func (e *Erasure) Rewrite(ctx context.Context, table, key, col string, fn func(value string) (any, bool)) {
	if e.err != nil {
		return
	}
	rows, err := e.st.QueryContext(ctx, `SELECT `+key+`, `+col+` FROM `+table+` WHERE `+col+` IS NOT NULL`)
	if err != nil {
		e.fail(table, err)
		return
	}
	type change struct {
		key string
		val any
	}
	var todo []change
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			e.fail(table, err)
			return
		}
		if nv, ok := fn(v); ok {
			todo = append(todo, change{k, nv})
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		e.fail(table, err)
		return
	}
	for _, c := range todo {
		if _, err := e.st.ExecContext(ctx, `UPDATE `+table+` SET `+col+` = ? WHERE `+key+` = ?`, c.val, c.key); err != nil {
			e.fail(table, err)
			return
		}
		e.total++
	}
}

// missingTable reports whether err says that a table does not exist (SQLite, PostgreSQL).
func missingTable(err error) bool {
	m := err.Error()
	return strings.Contains(m, "no such table") || strings.Contains(m, "does not exist")
}
