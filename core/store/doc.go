// Package store is the gateway's SQL system of record: SQLite (pure Go,
// modernc.org/sqlite) as the embedded default and PostgreSQL (pgx) for
// several replicas, behind one API.
//
// # Opening
//
//	st, err := store.Open(ctx, store.Config{Driver: store.SQLite, Path: "/var/lib/mimi-gateway/gateway.db"},
//		store.WithLogger(logger))
//	defer st.Close() // last in the shutdown order
//
// Open validates the Config, connects, pings and applies migrations (the
// store's own "core" component, then any passed with WithMigrations). It
// refuses with ErrSchemaTooNew a database migrated by a newer binary.
//
// SQLite runs in WAL mode with foreign keys on, synchronous=FULL by default
// and a busy_timeout. All writes of the process go through one writer
// connection (transactions start with BEGIN IMMEDIATE), so concurrent
// writers queue in Go and never see SQLITE_BUSY; reads outside transactions
// use a separate pool of query_only connections. PostgreSQL uses one pool.
// On SQLite the statements run through Tx and Store's methods are kept
// prepared by their text (up to 512 per pool, prepared in the background the
// first time a text is seen), so a statement that runs again is not parsed
// and planned again; pgx caches PostgreSQL's statements itself.
//
// # One SQL text for both dialects
//
// Write queries with '?' placeholders. Every method of Store, Tx and
// Querier rebinds them ($1, $2, ... on PostgreSQL). Use types and syntax
// both backends share: TEXT, BIGINT, INTEGER, ON CONFLICT ... DO NOTHING /
// DO UPDATE, RETURNING, row values. Store timestamps as BIGINT Unix
// milliseconds. Binary columns differ (BLOB vs BYTEA) and belong in the
// per-dialect migration files, not in queries. When raw access is needed,
// DB(), ReadDB() and (*Tx).SQL() expose database/sql, and Rebind converts
// placeholders.
//
// # Transactions and idempotency
//
// InTx runs a function in a transaction. MarkProcessed inside it makes
// "apply the event and remember it" atomic, which is how every bus consumer
// dedupes redeliveries:
//
//	err := st.InTx(ctx, func(tx *store.Tx) error {
//		first, err := tx.MarkProcessed(ctx, "endpoint", string(env.EventID))
//		if err != nil || !first {
//			return err // duplicate: nothing to do, ack it
//		}
//		_, err = tx.ExecContext(ctx, `INSERT INTO provider_msgmap (mimi_id, native_id) VALUES (?, ?)`, a, b)
//		return err
//	})
//
// On SQLite do not call the Store's own methods (or DB()) inside the InTx
// callback: the callback holds the only writer connection. Use tx.
//
// Compare-and-set on a version column (e.g. MLS epoch) is a conditional
// UPDATE inside InTx: `UPDATE t SET epoch = ?, state = ? WHERE id = ? AND
// epoch = ?`, treating zero rows affected as a conflict. On PostgreSQL
// (READ COMMITTED, several replicas) a read-then-write transaction can lose
// such a race: return a conflict error and retry the whole InTx, and retry
// errors for which IsRetryable is true (serialization failure, deadlock).
// Constraint errors are recognised with IsUniqueViolation and
// IsForeignKeyViolation on both backends.
//
// # Key-value
//
// KV(scope) gives a small versioned key-value namespace (Get, Put,
// CompareAndSwap, CompareAndDelete, Delete), also usable inside a
// transaction through (*Tx).KV. Values are limited to MaxValueLen.
//
// # Migrations for other components
//
// Each component owns its tables and versions them independently:
//
//	//go:embed migrations
//	var migrationFS embed.FS // migrations/0001_init.sql, migrations/0002_….sql
//	var Schema = store.MustMigrationsFromFS("matrix", migrationFS, "migrations")
//
//	err := st.Migrate(ctx, matrix.Schema) // at component start; idempotent
//
// Files are named NNNN_description.sql and versions start at 1 without
// gaps. One file serves both dialects: {{blob}}, {{bigint}}, {{autoid}} and
// {{without_rowid}} stand for the type names and clauses that differ, and
// lines between "-- dialect: sqlite" (or postgres) and "-- dialect: end" are
// for that dialect only (dialect.go). The checksum recorded is the rendered
// text's. A component's pending
// migrations are applied in one transaction and recorded in
// store_schema_migrations (component, version, name, checksum, applied_at).
// Prefix table names with the component ("matrix_", "provider_") to avoid
// clashes; the store's own tables are store_*.
//
// # Sealed columns: secrets and content encrypted at rest
//
// Secrets (private keys, MLS states) and message content are never written
// in the clear. A component declares each such column as a SealedColumn in
// its Migrations and seals values with Seal before writing them, Unseal
// after reading them (both on Store, Tx and Querier):
//
//	var sealedState = store.SealedColumn{Table: "provider_clients", Column: "state", Key: []string{"room", "user_uri"}}
//	v, err := tx.Seal(sealedState, raw, room, user) // bound to this row
//	raw, err := q.Unseal(sealedState, v, room, user)
//
// Values are XChaCha20-Poly1305 with a random nonce, bound by associated
// data to table, column and the row's Bind (or Key) values, so a value
// moved to another row does not open. The keyring comes from
// Config.Keys or Config.KeyFile; its first key seals, all keys open, and
// each value names its key by a KeyID. Open refuses a keyring that lacks a
// key the database uses (a wrong or missing key stops the start instead of
// reading garbage or writing plaintext). Migrate seals the plaintext values
// of a newly declared column once, in the migration's transaction. Reseal
// re-encrypts everything under an old key in small compare-and-set
// batches while the gateway runs (key rotation). The key-value table's
// values are sealed this way too.
//
// # Operations
//
// Store implements prometheus.Collector (transactions, durations,
// duplicates, CAS conflicts, SQLite busy errors, schema versions, and the
// database/sql pool statistics); register it with the admin registry. Ping
// is its readiness check. Labels never carry IDs.
//
// # Tests
//
// Package storetest runs a test body against SQLite and PostgreSQL
// (storetest.Each), creating and dropping a random PostgreSQL schema per
// test.
package store
