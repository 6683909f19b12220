// Package storetest runs tests against every store backend: SQLite in
// t.TempDir() and PostgreSQL in a fresh schema with a random name, dropped
// when the test ends, so many packages' tests can share one PostgreSQL
// concurrently.
//
// Typical use:
//
//	func TestMapping(t *testing.T) {
//		storetest.Each(t, func(t *testing.T, s *store.Store) {
//			if err := s.Migrate(t.Context(), mySchema); err != nil {
//				t.Fatal(err)
//			}
//			...
//		})
//	}
//
// PostgreSQL is found through MIMI_TEST_POSTGRES_DSN, or else at
// 127.0.0.1:5432, database "test", user "postgres" then "root" (trust
// auth). When it cannot be reached the test FAILS with instructions, unless
// MIMI_TEST_NO_POSTGRES=1 is set, in which case the PostgreSQL subtests are
// skipped with a loud message and only SQLite runs.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// Environment variables read by this package.
const (
	// EnvPostgresDSN overrides the PostgreSQL server used by tests (URL
	// form). A search_path parameter is added per test.
	EnvPostgresDSN = "MIMI_TEST_POSTGRES_DSN"
	// EnvNoPostgres, set to 1, runs only the SQLite backend.
	EnvNoPostgres = "MIMI_TEST_NO_POSTGRES"
)

// defaultDSNs are tried in order when EnvPostgresDSN is unset.
var defaultDSNs = []string{
	"postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
	"postgres://root@127.0.0.1:5432/test?sslmode=disable",
}

const howToStart = `PostgreSQL is required for store tests (both backends must pass).
Start one with trust auth and a database "test", for example:
    docker run -d --name mimi-pg -p 127.0.0.1:5432:5432 -e POSTGRES_HOST_AUTH_METHOD=trust -e POSTGRES_DB=test postgres:17
or point ` + EnvPostgresDSN + ` at a server, e.g. postgres://user@host:5432/db?sslmode=disable.
To run SQLite only, set ` + EnvNoPostgres + `=1 explicitly.`

var (
	adminOnce sync.Once
	adminDB   *sql.DB
	adminDSN  string
	adminErr  error
)

// admin returns a shared connection used to create and drop test schemas.
func admin() (*sql.DB, string, error) {
	adminOnce.Do(func() {
		candidates := defaultDSNs
		if v := os.Getenv(EnvPostgresDSN); v != "" {
			candidates = []string{v}
		}
		var errs []string
		for _, dsn := range candidates {
			db, err := sql.Open("pgx", dsn)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s: %v", redact(dsn), err))
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err = db.PingContext(ctx)
			cancel()
			if err != nil {
				_ = db.Close()
				errs = append(errs, fmt.Sprintf("%s: %v", redact(dsn), err))
				continue
			}
			db.SetMaxOpenConns(4)
			adminDB, adminDSN = db, dsn
			return
		}
		adminErr = fmt.Errorf("cannot reach PostgreSQL:\n  %s", strings.Join(errs, "\n  "))
	})
	return adminDB, adminDSN, adminErr
}

// redact hides a password in a DSN for messages.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable DSN)"
	}
	return u.Redacted()
}

func randomName(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// SQLiteConfig returns a Config for a fresh SQLite file in t.TempDir().
func SQLiteConfig(t testing.TB) store.Config {
	t.Helper()
	return store.Config{Driver: store.SQLite, Path: filepath.Join(t.TempDir(), "store.db")}
}

// PostgresConfig creates a schema with a random name, returns a Config whose
// DSN selects it through search_path, and drops the schema (CASCADE) when
// the test ends. It fails the test when PostgreSQL is unreachable, or skips
// it loudly when MIMI_TEST_NO_POSTGRES=1.
func PostgresConfig(t testing.TB) store.Config {
	t.Helper()
	db, dsn, err := admin()
	if err != nil {
		if os.Getenv(EnvNoPostgres) == "1" {
			t.Skipf("!!! %s=1: NOT testing PostgreSQL (%v)", EnvNoPostgres, err)
		}
		t.Fatalf("%v\n%s", err, howToStart)
	}
	schema := randomName("mimi_t_")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatalf("storetest: create schema %s: %v", schema, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := db.ExecContext(ctx, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			t.Errorf("storetest: drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("storetest: PostgreSQL DSN must be a URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return store.Config{Driver: store.Postgres, DSN: u.String(), MaxOpenConns: 4, Keys: Key(t)}
}

// Key returns a new encryption keyring (one random key) as text, for
// store.Config.Keys. SQLite configurations need none: they default to a key
// file created next to the database.
func Key(t testing.TB) string {
	t.Helper()
	k, err := store.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Backend is one named store configuration.
type Backend struct {
	// Name is "sqlite" or "postgres", used as the subtest name.
	Name string
	// Config returns a fresh, empty database's configuration for t.
	Config func(t testing.TB) store.Config
}

// Backends lists the backends in the order Each runs them.
func Backends() []Backend {
	return []Backend{
		{Name: "sqlite", Config: SQLiteConfig},
		{Name: "postgres", Config: PostgresConfig},
	}
}

// Open opens a store on cfg with the given options and closes it when the
// test ends (before a PostgreSQL schema is dropped).
func Open(t testing.TB, cfg store.Config, opts ...store.Option) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := store.Open(ctx, cfg, opts...)
	if err != nil {
		t.Fatalf("storetest: open %s store: %v", cfg.Driver, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("storetest: close store: %v", err)
		}
	})
	return s
}

// Each runs fn as a subtest per backend ("sqlite", "postgres"), each with a
// fresh, migrated store that is closed and removed afterwards. Options are
// passed to store.Open (e.g. store.WithMigrations(yourSchema)).
func Each(t *testing.T, fn func(t *testing.T, s *store.Store), opts ...store.Option) {
	t.Helper()
	for _, b := range Backends() {
		t.Run(b.Name, func(t *testing.T) {
			fn(t, Open(t, b.Config(t), opts...))
		})
	}
}

// EachConfig runs fn as a subtest per backend with a fresh, empty database's
// Config, for tests that open, close and reopen stores themselves.
func EachConfig(t *testing.T, fn func(t *testing.T, cfg store.Config)) {
	t.Helper()
	for _, b := range Backends() {
		t.Run(b.Name, func(t *testing.T) {
			fn(t, b.Config(t))
		})
	}
}
