package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	// Database drivers: "pgx" (PostgreSQL) and "sqlite" (modernc, pure Go).
	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"
)

// Dialect names the SQL dialect of a store's backend.
type Dialect string

// Supported dialects. Their string values are also the accepted values of
// Config.Driver.
const (
	// SQLite is the embedded default (modernc.org/sqlite, driver "sqlite").
	SQLite Dialect = "sqlite"
	// Postgres is PostgreSQL through pgx's database/sql driver.
	Postgres Dialect = "postgres"
)

// String returns the dialect name.
func (d Dialect) String() string { return string(d) }

// Defaults applied by Open when the corresponding Config field is zero.
const (
	// DefaultBusyTimeout is SQLite's busy_timeout when Config.BusyTimeout is 0.
	DefaultBusyTimeout = 10 * time.Second
	// DefaultMaxOpenConns bounds the PostgreSQL pool and the SQLite reader
	// pool when Config.MaxOpenConns is 0.
	DefaultMaxOpenConns = 10
	// DefaultSQLiteFile is the suggested database file name inside the
	// gateway's data directory; Open itself requires an explicit Path.
	DefaultSQLiteFile = "mimi-gateway.db"
)

// Config selects and configures the backend. The config package maps its
// YAML section onto it.
type Config struct {
	// Driver is SQLite (the default when empty) or Postgres; the
	// aliases "sqlite3", "postgresql" and "pgx" and any letter case are
	// accepted too (Dialect normalises them).
	Driver Dialect
	// Path is the SQLite database file. Its parent directory is created
	// (mode 0700) and a new file is created with mode 0600. Required for
	// sqlite; ":memory:" is refused because the store uses several
	// connections.
	Path string
	// DSN is the PostgreSQL connection string (URL or key=value form), e.g.
	// "postgres://gw@db:5432/gw?sslmode=verify-full". Required for postgres.
	DSN string
	// MaxOpenConns bounds the PostgreSQL pool, and the SQLite reader pool
	// (SQLite always has exactly one writer connection). Default 10.
	MaxOpenConns int
	// BusyTimeout is SQLite's busy_timeout: how long a connection waits for
	// a lock held by another process before failing. Default 10s.
	BusyTimeout time.Duration
	// SQLiteSynchronous is PRAGMA synchronous for SQLite: "full" (default,
	// durable across power loss) or "normal" (faster; in WAL mode the last
	// transactions may be lost on power loss, never on a process crash).
	SQLiteSynchronous string

	// Keys is the encryption keyring as text (see ParseKeyring), e.g. from an
	// environment secret; it takes precedence over KeyFile.
	Keys string
	// KeyFile is a file holding the encryption keyring (see ParseKeyring).
	// Secrets and message content in the store are sealed with its first key
	// (see SealedColumn). When both Keys and KeyFile are empty, SQLite uses
	// Path + ".key" with CreateKeyFile; PostgreSQL requires one of them.
	KeyFile string
	// CreateKeyFile lets Open create KeyFile (mode 0600) with a new key when
	// it does not exist and the database holds nothing sealed yet. A missing
	// key file for a database that holds sealed data is always an error.
	CreateKeyFile bool
}

// keySource applies the defaults of Keys, KeyFile and CreateKeyFile.
func (c Config) keySource(d Dialect) (Config, error) {
	if c.Keys != "" || c.KeyFile != "" {
		return c, nil
	}
	if d == SQLite {
		c.KeyFile, c.CreateKeyFile = c.Path+".key", true
		return c, nil
	}
	return c, fmt.Errorf("%w: an encryption key file or key is required for postgres (store.encryption.key_file)", ErrInvalidArgument)
}

// Dialect returns the configured dialect, or an error for an unknown driver.
func (c Config) Dialect() (Dialect, error) {
	switch strings.ToLower(strings.TrimSpace(string(c.Driver))) {
	case "", "sqlite", "sqlite3":
		return SQLite, nil
	case "postgres", "postgresql", "pgx":
		return Postgres, nil
	default:
		return "", fmt.Errorf("%w: unknown store driver %q (want sqlite or postgres)", ErrInvalidArgument, c.Driver)
	}
}

// Validate checks the configuration without touching the database. It
// returns all problems joined.
func (c Config) Validate() error {
	d, err := c.Dialect()
	if err != nil {
		return err
	}
	var errs []error
	switch d {
	case SQLite:
		if c.Path == "" {
			errs = append(errs, fmt.Errorf("%w: store path is required for sqlite", ErrInvalidArgument))
		} else if c.Path == ":memory:" || strings.HasPrefix(c.Path, "file:") || strings.ContainsAny(c.Path, "?#") {
			errs = append(errs, fmt.Errorf("%w: store path %q must be a plain file path (no :memory:, file: URIs, '?' or '#')", ErrInvalidArgument, c.Path))
		}
		switch strings.ToLower(c.SQLiteSynchronous) {
		case "", "full", "normal", "extra":
		default:
			errs = append(errs, fmt.Errorf("%w: sqlite synchronous %q (want full, normal or extra)", ErrInvalidArgument, c.SQLiteSynchronous))
		}
	case Postgres:
		if c.DSN == "" {
			errs = append(errs, fmt.Errorf("%w: store dsn is required for postgres", ErrInvalidArgument))
		}
	}
	if c.MaxOpenConns < 0 {
		errs = append(errs, fmt.Errorf("%w: max open conns %d is negative", ErrInvalidArgument, c.MaxOpenConns))
	}
	if c.BusyTimeout < 0 {
		errs = append(errs, fmt.Errorf("%w: busy timeout %s is negative", ErrInvalidArgument, c.BusyTimeout))
	}
	if _, err := c.keySource(d); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Option customises Open.
type Option func(*options)

type options struct {
	logger            *slog.Logger
	now               func() time.Time
	migrations        []Migrations
	beforeGroupCommit func(batch int)
}

// WithBeforeGroupCommit sets a function called with the number of callers of a shared
// transaction (InGroupTx) after all of them ran and just before it commits: crash tests stop
// the process there.
func WithBeforeGroupCommit(f func(batch int)) Option {
	return func(o *options) { o.beforeGroupCommit = f }
}

// WithLogger sets the logger for migration and lifecycle messages. The
// default discards them.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithClock replaces time.Now for timestamps written by the store (tests).
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.now = now
		}
	}
}

// WithMigrations applies additional components' migration sets during Open,
// after the store's own. Components may instead call (*Store).Migrate later.
func WithMigrations(sets ...Migrations) Option {
	return func(o *options) { o.migrations = append(o.migrations, sets...) }
}

// Store is the gateway's SQL system of record. It is safe for concurrent use.
//
// On SQLite it holds two pools on the same file: one writer connection
// (every transaction and every write is serialised through it, so writers in
// this process never see SQLITE_BUSY) and a read-only pool for reads outside
// transactions. On PostgreSQL both are the same pool.
type Store struct {
	dialect Dialect
	writer  *sql.DB
	reader  *sql.DB
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics
	keyring atomic.Pointer[Keyring]
	closed  atomic.Bool
	group   groupCommit // callers of InGroupTx waiting for a shared transaction
	// beforeGroupCommit is WithBeforeGroupCommit's function, or nil.
	beforeGroupCommit func(batch int)
	// fence is SetFence's function, or nil.
	fence atomic.Pointer[Fence]
	// writerStmts and readerStmts keep prepared statements (SQLite only; nil otherwise).
	writerStmts, readerStmts *stmtCache
}

// Open connects to the configured backend, checks the connection, applies
// the store's own migrations, loads the encryption keyring and checks it
// against the keys the database was sealed with, applies the migrations
// passed with WithMigrations, and returns the store. It refuses
// (ErrSchemaTooNew) a database migrated by a newer binary, and a missing or
// wrong encryption key.
func Open(ctx context.Context, cfg Config, opts ...Option) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := options{logger: slog.New(slog.DiscardHandler), now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	d, _ := cfg.Dialect()
	maxConns := cfg.MaxOpenConns
	if maxConns == 0 {
		maxConns = DefaultMaxOpenConns
	}
	s := &Store{dialect: d, log: o.logger.With("component", "store", "dialect", string(d)), now: o.now,
		beforeGroupCommit: o.beforeGroupCommit}
	var err error
	switch d {
	case SQLite:
		err = s.openSQLite(cfg, maxConns)
	case Postgres:
		err = s.openPostgres(cfg, maxConns)
	}
	if err != nil {
		return nil, err
	}
	s.metrics = newMetrics(s)
	if err := s.Ping(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	core := coreMigrations()
	schemaOnly := core
	schemaOnly.Sealed = nil
	if err := s.Migrate(ctx, schemaOnly); err != nil {
		_ = s.Close()
		return nil, err
	}
	kcfg, _ := cfg.keySource(d) // validated
	kr, err := s.loadKeyring(ctx, kcfg)
	if err == nil {
		err = s.useKeyring(ctx, kr)
	}
	if err != nil {
		_ = s.Close()
		return nil, err
	}
	if err := s.Migrate(ctx, append([]Migrations{core}, o.migrations...)...); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) openSQLite(cfg Config, readers int) error {
	if dir := filepath.Dir(cfg.Path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("store: create directory for sqlite database: %w", err)
		}
	}
	// Create the file with restrictive permissions; SQLite gives the -wal
	// and -shm files the same mode as the database file.
	f, err := os.OpenFile(cfg.Path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("store: open sqlite database file: %w", err)
	}
	_ = f.Close()

	busy := cfg.BusyTimeout
	if busy == 0 {
		busy = DefaultBusyTimeout
	}
	syncMode := strings.ToUpper(cfg.SQLiteSynchronous)
	if syncMode == "" {
		syncMode = "FULL"
	}
	common := url.Values{}
	common.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busy.Milliseconds()))
	common.Add("_pragma", "foreign_keys(1)")
	common.Add("_pragma", "synchronous("+syncMode+")")
	// Deleted content is overwritten, not left in free pages: erased and expired records (and
	// the plaintext replaced when a column is sealed) are gone from the file.
	common.Add("_pragma", "secure_delete(1)")

	wq := url.Values{}
	for k, v := range common {
		wq[k] = append([]string(nil), v...)
	}
	wq.Add("_pragma", "journal_mode(WAL)")
	// BEGIN IMMEDIATE takes the write lock up front, so a transaction that
	// reads first never fails with SQLITE_BUSY_SNAPSHOT when another process
	// (e.g. an admin CLI) wrote in between; the busy timeout covers waiting.
	wq.Set("_txlock", "immediate")
	writer, err := sql.Open("sqlite", cfg.Path+"?"+wq.Encode())
	if err != nil {
		return fmt.Errorf("store: open sqlite writer: %w", err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)
	// Force the writer connection open now so WAL mode is set before any
	// reader connects.
	if err := writer.Ping(); err != nil {
		_ = writer.Close()
		return fmt.Errorf("store: connect sqlite writer %s: %w", cfg.Path, err)
	}

	rq := common
	rq.Set("_query_only", "1")
	reader, err := sql.Open("sqlite", cfg.Path+"?"+rq.Encode())
	if err != nil {
		_ = writer.Close()
		return fmt.Errorf("store: open sqlite reader: %w", err)
	}
	reader.SetMaxOpenConns(readers)
	reader.SetMaxIdleConns(readers)
	s.writer, s.reader = writer, reader
	s.writerStmts, s.readerStmts = newStmtCache(writer), newStmtCache(reader)
	return nil
}

func (s *Store) openPostgres(cfg Config, maxConns int) error {
	db, err := sql.Open("pgx", cfg.DSN)
	if err != nil {
		// Never echo the DSN: it may carry a password.
		return fmt.Errorf("store: open postgres: %w", err)
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	db.SetConnMaxLifetime(30 * time.Minute)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s.writer, s.reader = db, db
	return nil
}

// Dialect returns the backend's dialect.
func (s *Store) Dialect() Dialect { return s.dialect }

// DB returns the *sql.DB that may write. On SQLite this pool has exactly one
// connection: never use it (or the Store's non-transactional methods)
// while holding a transaction from InTx in the same goroutine, or the call
// waits for the connection that the transaction holds until its context
// ends. Packages with their own database layer (the Matrix crypto store via
// go.mau.fi/util/dbutil) wrap this handle; on SQLite pass dialect
// "sqlite3" to dbutil.
func (s *Store) DB() *sql.DB { return s.writer }

// ReadDB returns a pool for read-only queries outside transactions. On SQLite
// it is a separate pool of query_only connections that read concurrently
// with the writer (WAL); on PostgreSQL it is the same pool as DB.
func (s *Store) ReadDB() *sql.DB { return s.reader }

// Ping checks that the database answers a query. Use it as the store's
// readiness check: admin.AddReadiness("store", st.Ping). On SQLite it reads
// the file header through the reader pool, so a busy writer (a long
// transaction, a queue of writes) does not make the gateway look unready.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return ErrClosed
	}
	q := `SELECT 1`
	if s.dialect == SQLite {
		q = `PRAGMA schema_version`
	}
	var v int64
	if err := s.reader.QueryRowContext(ctx, q).Scan(&v); err != nil {
		return fmt.Errorf("store: ping %s: %w", s.dialect, err)
	}
	return nil
}

// Close closes the pools. It waits for queries in progress; call it last in
// the shutdown order. Closing twice is harmless.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	s.writerStmts.close()
	s.readerStmts.close()
	var errs []error
	if s.reader != s.writer {
		if err := s.reader.Close(); err != nil {
			errs = append(errs, fmt.Errorf("store: close reader: %w", err))
		}
	}
	if s.dialect == SQLite {
		// Fold the WAL back into the main file so a backup of the .db file
		// alone is complete after a clean shutdown.
		if _, err := s.writer.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			s.log.Warn("sqlite checkpoint on close failed", "err", err)
		}
	}
	if err := s.writer.Close(); err != nil {
		errs = append(errs, fmt.Errorf("store: close: %w", err))
	}
	return errors.Join(errs...)
}

// Rebind rewrites a query written with '?' placeholders for the store's
// dialect ('$1', '$2', ... on PostgreSQL; unchanged on SQLite). See the
// package documentation for the rules.
func (s *Store) Rebind(query string) string { return Rebind(s.dialect, query) }

// ExecContext runs a write outside a transaction on the writer, with '?'
// placeholders.
func (s *Store) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	res, err := s.autocommitResult(ctx, func(q execer) (sql.Result, error) { return q.ExecContext(ctx, s.Rebind(query), args...) })
	s.metrics.autocommits.Inc()
	s.metrics.observeErr(err)
	return res, err
}

// QueryContext runs a read-only query on the reader pool, with '?'
// placeholders. Do not use it for statements that write (RETURNING
// included): on SQLite the reader connections are query_only.
func (s *Store) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	var (
		rows *sql.Rows
		err  error
	)
	if st := s.readerStmts.get(query); st != nil {
		rows, err = st.QueryContext(ctx, args...)
	} else {
		rows, err = s.reader.QueryContext(ctx, s.Rebind(query), args...)
	}
	s.metrics.observeErr(err)
	return rows, err
}

// QueryRowContext runs a read-only single-row query on the reader pool,
// with '?' placeholders.
func (s *Store) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := s.readerStmts.get(query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return s.reader.QueryRowContext(ctx, s.Rebind(query), args...)
}

// nowMillis returns the store clock as Unix milliseconds, the format of
// every timestamp column the store itself writes.
func (s *Store) nowMillis() int64 { return s.now().UnixMilli() }
