package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

var secretCol = store.SealedColumn{Table: "secret", Column: "value", Key: []string{"id"}}

func mustKeyring(t *testing.T, lines ...string) *store.Keyring {
	t.Helper()
	kr, err := store.ParseKeyring([]byte(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func TestSealOpensOnlyForItsRow(t *testing.T) {
	k1, k2 := storetest.Key(t), storetest.Key(t)
	kr := mustKeyring(t, k1)
	other := mustKeyring(t, k2)
	plain := []byte("the patient's MLS state")
	sealed, err := kr.Seal(secretCol, plain, "row-1")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, plain) {
		t.Fatal("sealed value contains the plaintext")
	}
	if len(sealed) != len(plain)+store.SealOverhead {
		t.Fatalf("sealed is %d bytes, want %d", len(sealed), len(plain)+store.SealOverhead)
	}
	again, _ := kr.Seal(secretCol, plain, "row-1")
	if bytes.Equal(sealed, again) {
		t.Fatal("two seals of the same value are equal: the nonce is not fresh")
	}
	if got, err := kr.Unseal(secretCol, sealed, "row-1"); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Unseal = %q, %v", got, err)
	}
	tampered := append([]byte(nil), sealed...)
	tampered[len(tampered)-1] ^= 1
	cases := []struct {
		name string
		kr   *store.Keyring
		col  store.SealedColumn
		val  []byte
		bind []string
		want error
	}{
		{"another row", kr, secretCol, sealed, []string{"row-2"}, store.ErrSealed},
		{"another column", kr, store.SealedColumn{Table: "secret", Column: "other", Key: []string{"id"}}, sealed, []string{"row-1"}, store.ErrSealed},
		{"another table", kr, store.SealedColumn{Table: "public", Column: "value", Key: []string{"id"}}, sealed, []string{"row-1"}, store.ErrSealed},
		{"bind split differently", kr, store.SealedColumn{Table: "secret", Column: "value", Key: []string{"a", "b"}}, sealed, []string{"row", "-1"}, store.ErrSealed},
		{"wrong number of bind values", kr, secretCol, sealed, []string{"row", "-1"}, store.ErrInvalidArgument},
		{"changed on disk", kr, secretCol, tampered, []string{"row-1"}, store.ErrSealed},
		{"plaintext", kr, secretCol, plain, []string{"row-1"}, store.ErrSealed},
		{"empty", kr, secretCol, nil, []string{"row-1"}, store.ErrSealed},
		{"another key", other, secretCol, sealed, []string{"row-1"}, store.ErrUnknownKey},
		{"no keyring", nil, secretCol, sealed, []string{"row-1"}, store.ErrNoKeyring},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.kr.Unseal(c.col, c.val, c.bind...)
			if !errors.Is(err, c.want) {
				t.Fatalf("Unseal = %q, %v; want %v", got, err, c.want)
			}
		})
	}
	// A keyring with the old key second opens the value and seals with the new one.
	rotated := mustKeyring(t, k2, k1)
	if got, err := rotated.Unseal(secretCol, sealed, "row-1"); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("rotated keyring: Unseal = %q, %v", got, err)
	}
	resealed, _ := rotated.Seal(secretCol, plain, "row-1")
	if id, _ := store.SealedKeyID(resealed); id != rotated.Primary() || id == kr.Primary() {
		t.Fatalf("rotated keyring sealed with %s, want its primary %s", id, rotated.Primary())
	}
}

func TestParseKeyring(t *testing.T) {
	k1, k2 := storetest.Key(t), storetest.Key(t)
	url := strings.NewReplacer("+", "-", "/", "_").Replace(strings.TrimRight(k2, "="))
	cases := []struct {
		name  string
		text  string
		keys  int
		error string
	}{
		{"one key", k1, 1, ""},
		{"comments and blank lines", "# new key first\n\n" + k2 + "\n# old\n" + k1 + "\n", 2, ""},
		{"one line for an environment variable", k2 + "," + k1, 2, ""},
		{"URL alphabet without padding", url, 1, ""},
		{"empty", "", 0, "no keys"},
		{"only comments", "# nothing\n", 0, "no keys"},
		{"short key", k1[:20], 0, "line 1"},
		{"not base64", strings.Repeat("!", 44), 0, "line 1"},
		{"the same key twice", k1 + "\n" + k1, 0, "twice"},
		{"too many keys", strings.Repeat(k1+"\n", store.MaxKeyringKeys+1), 0, "at most"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			kr, err := store.ParseKeyring([]byte(c.text))
			if c.error != "" {
				if err == nil || !strings.Contains(err.Error(), c.error) {
					t.Fatalf("ParseKeyring = %v, want an error with %q", err, c.error)
				}
				if strings.Contains(err.Error(), k1[:10]) {
					t.Fatalf("error shows the key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(kr.IDs()) != c.keys {
				t.Fatalf("%d keys, want %d", len(kr.IDs()), c.keys)
			}
		})
	}
}

// writeKeys writes a keyring file with the given lines.
func writeKeys(t *testing.T, path string, lines ...string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestKeyFileCreatedOnceAndRequiredAfterwards(t *testing.T) {
	dir := t.TempDir()
	cfg := store.Config{Path: filepath.Join(dir, "gw.db")}
	s := storetest.Open(t, cfg)
	if _, err := s.KV("test").Put(t.Context(), "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	s.Close()
	info, err := os.Stat(cfg.Path + ".key")
	if err != nil {
		t.Fatalf("no key file created: %v", err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", info.Mode().Perm())
	}
	// Reopening reads the same key.
	s = storetest.Open(t, cfg)
	if e, err := s.KV("test").Get(t.Context(), "k"); err != nil || string(e.Value) != "v" {
		t.Fatalf("after reopen: %q, %v", e.Value, err)
	}
	s.Close()
	// Without it the database does not open, and no new key is made up.
	if err := os.Rename(cfg.Path+".key", filepath.Join(dir, "saved.key")); err != nil {
		t.Fatal(err)
	}
	_, err = store.Open(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "does not exist, but the database holds data encrypted with key") {
		t.Fatalf("Open without the key file = %v", err)
	}
	if _, err := os.Stat(cfg.Path + ".key"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open created a key file for a sealed database: %v", err)
	}
	// An explicit key file is never created.
	_, err = store.Open(t.Context(), store.Config{Path: filepath.Join(dir, "other.db"), KeyFile: filepath.Join(dir, "absent.key")})
	if err == nil || !strings.Contains(err.Error(), "absent.key does not exist") {
		t.Fatalf("Open with a missing explicit key file = %v", err)
	}
}

func TestWrongKeyStopsOpen(t *testing.T) {
	storetest.EachConfig(t, func(t *testing.T, cfg store.Config) {
		ctx := t.Context()
		right, wrong := storetest.Key(t), storetest.Key(t)
		cfg.Keys = right
		s := storetest.Open(t, cfg)
		if _, err := s.KV("test").Put(ctx, "k", []byte("v")); err != nil {
			t.Fatal(err)
		}
		rightID := s.Keyring().Primary()
		s.Close()

		cfg.Keys = wrong
		_, err := store.Open(ctx, cfg)
		if err == nil {
			t.Fatal("Open with the wrong key succeeded")
		}
		msg := err.Error()
		if !strings.Contains(msg, "wrong encryption key") || !strings.Contains(msg, rightID.String()) {
			t.Fatalf("error does not say which key is needed: %v", err)
		}
		if strings.Contains(msg, right[:12]) || strings.Contains(msg, wrong[:12]) {
			t.Fatalf("error shows a key: %v", err)
		}

		// The right key with a new one in front opens, and new values use the new key.
		cfg.Keys = wrong + "\n" + right
		s = storetest.Open(t, cfg)
		if e, err := s.KV("test").Get(ctx, "k"); err != nil || string(e.Value) != "v" {
			t.Fatalf("with both keys: %q, %v", e.Value, err)
		}
		s.Close()
		// Now the database needs both until a rotation has finished.
		cfg.Keys = wrong
		if _, err := store.Open(ctx, cfg); err == nil || !strings.Contains(err.Error(), rightID.String()) {
			t.Fatalf("Open without the old key before rotation = %v", err)
		}
	})
}

// secrets is a test component with one sealed column.
func secrets(sealed bool) store.Migrations {
	m := store.Migrations{Component: "secret", Dialects: map[store.Dialect]fs.FS{
		store.SQLite:   fstest.MapFS{"0001_secret.sql": {Data: []byte(`CREATE TABLE secret (id TEXT PRIMARY KEY, version INTEGER NOT NULL, value BLOB);`)}},
		store.Postgres: fstest.MapFS{"0001_secret.sql": {Data: []byte(`CREATE TABLE secret (id TEXT PRIMARY KEY, version BIGINT NOT NULL, value BYTEA);`)}},
	}}
	if sealed {
		m.Sealed = []store.SealedColumn{secretCol}
	}
	return m
}

func TestPlaintextSealedOnUpgrade(t *testing.T) {
	storetest.EachConfig(t, func(t *testing.T, cfg store.Config) {
		ctx := t.Context()
		// An older binary: the column is not sealed yet, values are plaintext, and so are the
		// key-value entries (written here directly, as an older store did).
		s := storetest.Open(t, cfg, store.WithMigrations(secrets(false)))
		for i := range 5 {
			if _, err := s.ExecContext(ctx, `INSERT INTO secret (id, version, value) VALUES (?, 1, ?)`, "r"+strconv.Itoa(i), []byte("plain secret "+strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.ExecContext(ctx, `INSERT INTO secret (id, version, value) VALUES ('null', 1, NULL)`); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ExecContext(ctx, `DELETE FROM store_sealed_columns`); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ExecContext(ctx, `INSERT INTO store_kv (scope, key, value, version, updated_at) VALUES ('old', 'hub-key', ?, 1, 0)`, []byte("plain kv secret")); err != nil {
			t.Fatal(err)
		}
		s.Close()

		// The new binary seals both at start.
		s = storetest.Open(t, cfg, store.WithMigrations(secrets(true)))
		var n int
		if err := s.QueryRowContext(ctx, `SELECT COUNT(*) FROM store_sealed_columns`).Scan(&n); err != nil || n != 2 {
			t.Fatalf("sealed columns recorded: %d, %v; want 2 (store_kv.value, secret.value)", n, err)
		}
		rows, err := s.QueryContext(ctx, `SELECT id, value FROM secret WHERE value IS NOT NULL ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for rows.Next() {
			var id string
			var v []byte
			if err := rows.Scan(&id, &v); err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(v, []byte("plain secret")) {
				t.Fatalf("row %s still plaintext", id)
			}
			pt, err := s.Unseal(secretCol, v, id)
			if err != nil || string(pt) != "plain secret "+strings.TrimPrefix(id, "r") {
				t.Fatalf("row %s: %q, %v", id, pt, err)
			}
			got++
		}
		rows.Close()
		if got != 5 {
			t.Fatalf("%d sealed rows, want 5", got)
		}
		var null []byte
		if err := s.QueryRowContext(ctx, `SELECT value FROM secret WHERE id = 'null'`).Scan(&null); err != nil || null != nil {
			t.Fatalf("NULL became %q, %v", null, err)
		}
		if e, err := s.KV("old").Get(ctx, "hub-key"); err != nil || string(e.Value) != "plain kv secret" {
			t.Fatalf("old kv entry: %q, %v", e.Value, err)
		}
		s.Close()
		// A third start changes nothing.
		s = storetest.Open(t, cfg, store.WithMigrations(secrets(true)))
		if e, err := s.KV("old").Get(ctx, "hub-key"); err != nil || string(e.Value) != "plain kv secret" {
			t.Fatalf("old kv entry after a second start: %q, %v", e.Value, err)
		}
		// A changed definition is refused: the values are bound to the old one.
		changed := secrets(true)
		changed.Sealed = []store.SealedColumn{{Table: "secret", Column: "value", Key: []string{"id"}, Bind: []string{"id", "version"}}}
		if err := s.Migrate(ctx, changed); err == nil || !errors.Is(err, store.ErrInvalidArgument) {
			t.Fatalf("Migrate with a changed sealed column = %v", err)
		}
	})
}

// TestResealUnderLoad rotates the key while writers keep changing sealed values: an admin
// process (a second Store on the same database) re-encrypts in batches while the "gateway"
// increments a counter inside each sealed value with compare-and-set. Afterwards every value
// opens with the new key alone, and every counter equals the number of increments that
// committed.
func TestResealUnderLoad(t *testing.T) {
	storetest.EachConfig(t, func(t *testing.T, cfg store.Config) {
		ctx := t.Context()
		oldKey, newKey := storetest.Key(t), storetest.Key(t)
		const rows = 300
		cfg.Keys = oldKey
		gw := storetest.Open(t, cfg, store.WithMigrations(secrets(true)))
		err := gw.InTx(ctx, func(tx *store.Tx) error {
			for i := range rows {
				id := fmt.Sprintf("r%04d", i)
				v, err := tx.Seal(secretCol, []byte("0"), id)
				if err != nil {
					return err
				}
				if _, err := tx.ExecContext(ctx, `INSERT INTO secret (id, version, value) VALUES (?, 1, ?)`, id, v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		gw.Close()

		// The gateway restarts with the new key first; the admin command runs alongside.
		cfg.Keys = newKey + "\n" + oldKey
		gw = storetest.Open(t, cfg, store.WithMigrations(secrets(true)))
		admin := storetest.Open(t, cfg, store.WithMigrations(secrets(true)))

		var committed [rows]atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var writeErr atomic.Value
		for w := range 3 {
			wg.Go(func() {
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					i := (n*7 + w*101) % rows
					id := fmt.Sprintf("r%04d", i)
					err := increment(ctx, gw, id)
					switch {
					case err == nil:
						committed[i].Add(1)
					case errors.Is(err, store.ErrConflict) || store.IsRetryable(err):
					default:
						writeErr.Store(err)
						return
					}
				}
			})
		}
		// Let the writers get going before the rotation starts.
		for started := false; !started; {
			var total int64
			for i := range committed {
				total += committed[i].Load()
			}
			started = total >= 50 || writeErr.Load() != nil
			time.Sleep(5 * time.Millisecond)
		}
		var batches atomic.Int64
		st, err := admin.Reseal(ctx, 16, func(store.ResealStats) { batches.Add(1) })
		close(stop)
		wg.Wait()
		if err != nil {
			t.Fatalf("Reseal: %v", err)
		}
		if e := writeErr.Load(); e != nil {
			t.Fatalf("writer: %v", e)
		}
		if st.Remaining != 0 || len(st.Retired) != 1 || st.Retired[0] != mustKeyring(t, oldKey).Primary() {
			t.Fatalf("Reseal = %+v; want nothing remaining and the old key retired", st)
		}
		if st.Resealed == 0 || batches.Load() < rows/16 {
			t.Fatalf("Reseal = %+v after %d batches; want work in batches of 16", st, batches.Load())
		}
		var total int64
		for i := range committed {
			total += committed[i].Load()
		}
		t.Logf("reseal: %+v in %d batches; %d increments committed meanwhile", st, batches.Load(), total)
		gw.Close()
		admin.Close()

		// Only the new key is needed now; every counter is intact.
		cfg.Keys = newKey
		s := storetest.Open(t, cfg, store.WithMigrations(secrets(true)))
		for i := range rows {
			id := fmt.Sprintf("r%04d", i)
			var v []byte
			if err := s.QueryRowContext(ctx, `SELECT value FROM secret WHERE id = ?`, id).Scan(&v); err != nil {
				t.Fatal(err)
			}
			pt, err := s.Unseal(secretCol, v, id)
			if err != nil {
				t.Fatalf("row %s: %v", id, err)
			}
			if n, _ := strconv.ParseInt(string(pt), 10, 64); n != committed[i].Load() {
				t.Fatalf("row %s counter %s, want %d committed increments", id, pt, committed[i].Load())
			}
		}
	})
}

// increment adds one to the counter sealed in row id, compare-and-set on its version.
func increment(ctx context.Context, s *store.Store, id string) error {
	return s.InTx(ctx, func(tx *store.Tx) error {
		var ver int64
		var v []byte
		if err := tx.QueryRowContext(ctx, `SELECT version, value FROM secret WHERE id = ?`, id).Scan(&ver, &v); err != nil {
			return err
		}
		pt, err := tx.Unseal(secretCol, v, id)
		if err != nil {
			return err
		}
		n, err := strconv.ParseInt(string(pt), 10, 64)
		if err != nil {
			return err
		}
		nv, err := tx.Seal(secretCol, []byte(strconv.FormatInt(n+1, 10)), id)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE secret SET version = version + 1, value = ? WHERE id = ? AND version = ?`, nv, id, ver)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return store.ErrConflict
		}
		return nil
	})
}
