package store

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
)

// DefaultResealBatch is the number of rows Reseal reads and rewrites per transaction when the
// caller passes 0.
const DefaultResealBatch = 200

// maxResealPasses bounds how often Reseal walks the columns while rows keep being rewritten
// with an old key (another process that still seals with it).
const maxResealPasses = 5

// ResealStats reports what Reseal did.
type ResealStats struct {
	// Columns is the number of sealed columns walked.
	Columns int
	// Examined is the number of sealed values read.
	Examined int64
	// Resealed is the number of values re-encrypted with the primary key.
	Resealed int64
	// Changed is the number of values that were rewritten by someone else between the read and the
	// re-encryption; they keep the new value (sealed by its writer) and are looked at again.
	Changed int64
	// Remaining is the number of values still sealed with another key when Reseal returned.
	Remaining int64
	// Retired lists the keys no value is sealed with any more; they may be removed from the
	// keyring (after every gateway process has the new primary).
	Retired []KeyID
}

// Reseal re-encrypts every sealed value that is not sealed with the keyring's primary key, in
// transactions of batch rows (DefaultResealBatch when 0), while the gateway keeps running: each
// value is replaced only if it is still the one read (compare-and-set), so a concurrent write is
// never lost. It walks every sealed column recorded in the database, including those of
// components this process did not migrate. When a walk finds no value under an old key, Reseal
// marks the old keys retired (a later start no longer requires them) and returns them in
// ResealStats.Retired. progress, if not nil, is called after each batch.
func (s *Store) Reseal(ctx context.Context, batch int, progress func(ResealStats)) (ResealStats, error) {
	if batch <= 0 {
		batch = DefaultResealBatch
	}
	kr := s.keyring.Load()
	if kr == nil {
		return ResealStats{}, ErrNoKeyring
	}
	cols, err := s.sealedColumns(ctx)
	if err != nil {
		return ResealStats{}, err
	}
	var st ResealStats
	st.Columns = len(cols)
	for pass := 1; ; pass++ {
		var found int64
		for _, c := range cols {
			n, err := s.resealColumn(ctx, kr, c, batch, &st, progress)
			if err != nil {
				return st, err
			}
			found += n
		}
		// A pass that finds nothing under an old key confirms that none is left.
		if found == 0 || pass == maxResealPasses {
			st.Remaining = found
			break
		}
	}
	if st.Remaining == 0 {
		retired, err := s.retireKeys(ctx, kr.primary)
		if err != nil {
			return st, err
		}
		st.Retired = retired
	}
	return st, nil
}

// sealedColumns reads every sealed column recorded in the database.
func (s *Store) sealedColumns(ctx context.Context) ([]SealedColumn, error) {
	rows, err := s.QueryContext(ctx, `SELECT table_name, column_name, key_columns, bind_columns FROM store_sealed_columns ORDER BY table_name, column_name`)
	if err != nil {
		return nil, fmt.Errorf("store: read sealed columns: %w", err)
	}
	defer rows.Close()
	var cols []SealedColumn
	for rows.Next() {
		var c SealedColumn
		var key, bind string
		if err := rows.Scan(&c.Table, &c.Column, &key, &bind); err != nil {
			return nil, fmt.Errorf("store: read sealed columns: %w", err)
		}
		c.Key, c.Bind = strings.Split(key, ","), strings.Split(bind, ",")
		if err := c.Validate(); err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

// resealColumn walks c in key order, batch rows at a time, and returns how many values it found
// sealed with another key than the primary.
func (s *Store) resealColumn(ctx context.Context, kr *Keyring, c SealedColumn, batch int, st *ResealStats, progress func(ResealStats)) (int64, error) {
	var found int64
	order := strings.Join(c.Key, ", ")
	var last []any
	for {
		if err := ctx.Err(); err != nil {
			return found, err
		}
		where := ` WHERE ` + c.Column + ` IS NOT NULL`
		args := []any{}
		if last != nil {
			where += ` AND (` + order + `) > (` + strings.TrimSuffix(strings.Repeat("?, ", len(c.Key)), ", ") + `)`
			args = append(args, last...)
		}
		args = append(args, batch)
		rows, err := s.QueryContext(ctx, c.selectRows(where+` ORDER BY `+order+` LIMIT ?`), args...)
		if err != nil {
			return found, fmt.Errorf("store: reseal %s: %w", c, err)
		}
		var page []sealedRow
		for rows.Next() {
			r, err := c.scan(rows)
			if err != nil {
				rows.Close()
				return found, fmt.Errorf("store: reseal %s: %w", c, err)
			}
			page = append(page, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return found, fmt.Errorf("store: reseal %s: %w", c, err)
		}
		if len(page) == 0 {
			return found, nil
		}
		last = page[len(page)-1].key
		var todo []sealedRow
		for _, r := range page {
			st.Examined++
			id, err := SealedKeyID(r.value)
			if err != nil {
				return found, fmt.Errorf("%w: %s holds a value that is not sealed: %w", ErrSealed, c, err)
			}
			if id != kr.primary {
				found++
				todo = append(todo, r)
			}
		}
		if len(todo) > 0 {
			err := s.InTx(ctx, func(tx *Tx) error {
				for _, r := range todo {
					pt, err := kr.Unseal(c, r.value, r.bind...)
					if err != nil {
						return err
					}
					sealed, err := kr.Seal(c, pt, r.bind...)
					if err != nil {
						return err
					}
					res, err := tx.ExecContext(ctx, c.updateRow(true), append(append([]any{sealed}, r.key...), r.value)...)
					if err != nil {
						return fmt.Errorf("store: reseal %s: %w", c, err)
					}
					if n, _ := res.RowsAffected(); n == 1 {
						st.Resealed++
						s.metrics.resealed.Inc()
					} else {
						st.Changed++ // looked at again in the next pass
					}
				}
				return nil
			})
			if err != nil {
				return found, err
			}
		}
		if progress != nil {
			progress(*st)
		}
		if len(page) < batch {
			return found, nil
		}
	}
}

// retireKeys marks every registered key except primary retired and returns them.
func (s *Store) retireKeys(ctx context.Context, primary KeyID) ([]KeyID, error) {
	var out []KeyID
	err := s.InTx(ctx, func(tx *Tx) error {
		out = nil
		rows, err := tx.QueryContext(ctx, `SELECT key_id FROM store_keys WHERE retired = 0 AND key_id <> ?`, primary.String())
		if err != nil {
			return err
		}
		var ids []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `UPDATE store_keys SET retired = 1 WHERE key_id = ?`, id); err != nil {
				return err
			}
			var k KeyID
			if b, err := hex.DecodeString(id); err == nil && len(b) == len(k) {
				copy(k[:], b)
				out = append(out, k)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: retire keys: %w", err)
	}
	return out, nil
}
