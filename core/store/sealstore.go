package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// keyCheck is the column of store_keys whose value proves that a keyring key is the one
// registered under its ID.
var keyCheck = SealedColumn{Table: "store_keys", Column: "check_value", Key: []string{"key_id"}}

// kvValue is the sealed value column of the key-value table.
var kvValue = SealedColumn{Table: "store_kv", Column: "value", Key: []string{"scope", "key"}}

const keyCheckText = "mimi-gateway store key check"

// Keyring returns the store's keyring.
func (s *Store) Keyring() *Keyring { return s.keyring.Load() }

// Seal encrypts plaintext for the row of c identified by bind with the store's primary key (see
// SealedColumn).
func (s *Store) Seal(c SealedColumn, plaintext []byte, bind ...string) ([]byte, error) {
	return s.keyring.Load().Seal(c, plaintext, bind...)
}

// Unseal decrypts a value that Seal produced for the same column and row.
func (s *Store) Unseal(c SealedColumn, sealed []byte, bind ...string) ([]byte, error) {
	return s.keyring.Load().Unseal(c, sealed, bind...)
}

// Seal is (*Store).Seal, for use inside a transaction.
func (t *Tx) Seal(c SealedColumn, plaintext []byte, bind ...string) ([]byte, error) {
	return t.s.Seal(c, plaintext, bind...)
}

// Unseal is (*Store).Unseal, for use inside a transaction.
func (t *Tx) Unseal(c SealedColumn, sealed []byte, bind ...string) ([]byte, error) {
	return t.s.Unseal(c, sealed, bind...)
}

// loadKeyring reads the keyring the configuration names: Keys, else KeyFile (created with a new
// key when CreateKeyFile is set, the file does not exist and the database has no key
// registered). It runs after the core migrations, before any other component's.
func (s *Store) loadKeyring(ctx context.Context, cfg Config) (*Keyring, error) {
	if cfg.Keys != "" {
		kr, err := ParseKeyring([]byte(cfg.Keys))
		if err != nil {
			return nil, fmt.Errorf("store: encryption key from the configuration: %w", err)
		}
		return kr, nil
	}
	path := cfg.KeyFile
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		registered, rerr := s.registeredKeys(ctx)
		if rerr != nil {
			return nil, rerr
		}
		if len(registered) > 0 {
			return nil, fmt.Errorf("store: encryption key file %s does not exist, but the database holds data encrypted with key %s: restore that key file (the data cannot be read without it)",
				path, strings.Join(registered, ", "))
		}
		if !cfg.CreateKeyFile {
			return nil, fmt.Errorf("store: encryption key file %s does not exist (create one with `mimi-gateway admin store-key generate > %s`)", path, path)
		}
		return s.createKeyFile(path)
	case err != nil:
		return nil, fmt.Errorf("store: encryption key file: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		s.log.Warn("encryption key file is readable by other users; make it 0600", "path", path, "mode", info.Mode().Perm().String())
	}
	text, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	kr, err := ParseKeyring(text)
	if err != nil {
		return nil, fmt.Errorf("store: encryption key file %s: %w", path, err)
	}
	return kr, nil
}

func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("store: encryption key file: %w", err)
	}
	defer f.Close()
	b := make([]byte, maxKeyringText+1)
	n, err := f.Read(b)
	if err != nil {
		return nil, fmt.Errorf("store: read encryption key file %s: %w", path, err)
	}
	return b[:n], nil
}

// createKeyFile writes a new keyring with one key to path (mode 0600, its directory 0700),
// refusing to overwrite a file that appeared meanwhile.
func (s *Store) createKeyFile(path string) (*Keyring, error) {
	line, err := GenerateKey()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("store: create directory for encryption key file: %w", err)
	}
	text := "# mimi-gateway store encryption key: keep it, and back it up apart from the database.\n" + line + "\n"
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: create encryption key file: %w", err)
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return nil, fmt.Errorf("store: write encryption key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("store: sync encryption key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("store: close encryption key file: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	s.log.Info("created a new store encryption key; back it up apart from the database", "path", path)
	return ParseKeyring([]byte(text))
}

// registeredKeys returns the IDs of the keys the database has data sealed with (not retired).
func (s *Store) registeredKeys(ctx context.Context) ([]string, error) {
	rows, err := s.writer.QueryContext(ctx, `SELECT key_id FROM store_keys WHERE retired = 0 ORDER BY key_id`)
	if err != nil {
		return nil, fmt.Errorf("store: read registered keys: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("store: read registered keys: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// useKeyring checks kr against the keys registered in the database and makes it the store's
// keyring: every registered key that is not retired must be in kr (else the data sealed with it
// could not be read), each key of kr that is registered must open its check value (a different
// key with a colliding ID is refused), and kr's primary key is registered if it is new.
func (s *Store) useKeyring(ctx context.Context, kr *Keyring) error {
	err := s.InTx(ctx, func(tx *Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT key_id, check_value, retired FROM store_keys`)
		if err != nil {
			return fmt.Errorf("store: read registered keys: %w", err)
		}
		type reg struct {
			check   []byte
			retired bool
		}
		registered := map[string]reg{}
		for rows.Next() {
			var id string
			var r reg
			var retired int
			if err := rows.Scan(&id, &r.check, &retired); err != nil {
				rows.Close()
				return fmt.Errorf("store: read registered keys: %w", err)
			}
			r.retired = retired != 0
			registered[id] = r
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store: read registered keys: %w", err)
		}
		var missing []string
		for id, r := range registered {
			if !r.retired && !kr.hasString(id) {
				missing = append(missing, id)
			}
		}
		if len(missing) > 0 {
			slices.Sort(missing)
			have := make([]string, 0, len(kr.ids))
			for _, id := range kr.ids {
				have = append(have, id.String())
			}
			return fmt.Errorf("store: wrong encryption key: the database holds data encrypted with key %s, the configured keyring has %s; configure the key the database was created with (keys are never replaced, only added: put a new key first and keep the old ones until `mimi-gateway admin store-key rotate` finishes)",
				strings.Join(missing, ", "), strings.Join(have, ", "))
		}
		for _, id := range kr.ids {
			r, ok := registered[id.String()]
			if !ok {
				continue
			}
			pt, err := kr.Unseal(keyCheck, r.check, id.String())
			if err != nil || string(pt) != keyCheckText {
				return fmt.Errorf("store: wrong encryption key: key %s of the keyring does not match the key registered under that ID", id)
			}
		}
		p := kr.primary.String()
		if r, ok := registered[p]; ok {
			if r.retired {
				_, err := tx.ExecContext(ctx, `UPDATE store_keys SET retired = 0 WHERE key_id = ?`, p)
				return err
			}
			return nil
		}
		check, err := kr.Seal(keyCheck, []byte(keyCheckText), p)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO store_keys (key_id, check_value, retired, created_at) VALUES (?, ?, 0, ?)`,
			p, check, s.nowMillis()); err != nil {
			return fmt.Errorf("store: register encryption key: %w", err)
		}
		s.log.Info("registered store encryption key", "key_id", p)
		return nil
	})
	if err != nil {
		return err
	}
	s.keyring.Store(kr)
	return nil
}

// SetKeyring replaces the keyring at runtime (a configuration reload), after the same checks as
// at Open. New values are sealed with kr's primary key from then on.
func (s *Store) SetKeyring(ctx context.Context, kr *Keyring) error {
	if kr == nil {
		return ErrNoKeyring
	}
	return s.useKeyring(ctx, kr)
}

func (kr *Keyring) hasString(id string) bool {
	for _, k := range kr.ids {
		if k.String() == id {
			return true
		}
	}
	return false
}

// registerSealed records c in store_sealed_columns inside a migration transaction. The first
// time, it seals the column's existing plaintext values (rows written before the column was
// sealed); a column already recorded must keep its definition, since its values are bound to it.
func (s *Store) registerSealed(ctx context.Context, tx *Tx, component string, c SealedColumn) error {
	if err := c.Validate(); err != nil {
		return err
	}
	key, bind := strings.Join(c.Key, ","), strings.Join(c.bind(), ",")
	var haveKey, haveBind string
	err := tx.QueryRowContext(ctx, `SELECT key_columns, bind_columns FROM store_sealed_columns WHERE table_name = ? AND column_name = ?`,
		c.Table, c.Column).Scan(&haveKey, &haveBind)
	switch {
	case err == nil:
		if haveKey != key || haveBind != bind {
			return fmt.Errorf("%w: sealed column %s was registered with key (%s) and bind (%s), now (%s) and (%s): its values are bound to the old definition",
				ErrInvalidArgument, c, haveKey, haveBind, key, bind)
		}
		return nil
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("store: read sealed columns: %w", err)
	}
	n, err := s.sealPlaintext(ctx, tx, c)
	if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO store_sealed_columns (table_name, column_name, component, key_columns, bind_columns, sealed_at) VALUES (?, ?, ?, ?, ?, ?)`,
		c.Table, c.Column, component, key, bind, s.nowMillis()); err != nil {
		return fmt.Errorf("store: record sealed column %s: %w", c, err)
	}
	if n > 0 {
		s.log.Info("sealed existing plaintext values", "column", c.String(), "rows", n)
	}
	return nil
}

// sealPlaintext seals every non-NULL value of c in place.
func (s *Store) sealPlaintext(ctx context.Context, tx *Tx, c SealedColumn) (int, error) {
	kr := s.keyring.Load()
	if kr == nil {
		return 0, fmt.Errorf("%w (sealed column %s)", ErrNoKeyring, c)
	}
	rows, err := tx.QueryContext(ctx, c.selectRows("")+` WHERE `+c.Column+` IS NOT NULL`)
	if err != nil {
		return 0, fmt.Errorf("store: read plaintext of %s: %w", c, err)
	}
	var all []sealedRow
	for rows.Next() {
		r, err := c.scan(rows)
		if err != nil {
			rows.Close()
			return 0, fmt.Errorf("store: read plaintext of %s: %w", c, err)
		}
		all = append(all, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("store: read plaintext of %s: %w", c, err)
	}
	for _, r := range all {
		sealed, err := kr.Seal(c, r.value, r.bind...)
		if err != nil {
			return 0, err
		}
		if _, err := tx.ExecContext(ctx, c.updateRow(false), append([]any{sealed}, r.key...)...); err != nil {
			return 0, fmt.Errorf("store: seal %s: %w", c, err)
		}
	}
	return len(all), nil
}

// sealedRow is one row of a sealed column as read for sealing or resealing.
type sealedRow struct {
	key   []any
	bind  []string
	value []byte
}

// selectRows is SELECT key..., bind..., column FROM table, with an optional WHERE/ORDER suffix.
func (c SealedColumn) selectRows(suffix string) string {
	cols := append(append(append([]string{}, c.Key...), c.bind()...), c.Column)
	return `SELECT ` + strings.Join(cols, ", ") + ` FROM ` + c.Table + suffix
}

func (c SealedColumn) scan(rows *sql.Rows) (sealedRow, error) {
	r := sealedRow{key: make([]any, len(c.Key)), bind: make([]string, len(c.bind()))}
	dest := make([]any, 0, len(c.Key)+len(c.bind())+1)
	for i := range r.key {
		dest = append(dest, &r.key[i])
	}
	for i := range r.bind {
		dest = append(dest, &r.bind[i])
	}
	dest = append(dest, &r.value)
	if err := rows.Scan(dest...); err != nil {
		return sealedRow{}, err
	}
	return r, nil
}

// updateRow is UPDATE table SET column = ? WHERE key = ? AND ..., and AND column = ? when cas.
func (c SealedColumn) updateRow(cas bool) string {
	where := make([]string, 0, len(c.Key)+1)
	for _, k := range c.Key {
		where = append(where, k+" = ?")
	}
	if cas {
		where = append(where, c.Column+" = ?")
	}
	return `UPDATE ` + c.Table + ` SET ` + c.Column + ` = ? WHERE ` + strings.Join(where, " AND ")
}
