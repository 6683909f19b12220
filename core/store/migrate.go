package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Limits on migration sets.
const (
	maxComponentLen     = 64
	maxMigrationFileLen = 1 << 20
	maxMigrations       = 10000
)

// Migrations is one component's versioned schema: one file per version
// for all dialects, with dialect markers where they differ (see dialect.go:
// placeholders such as {{blob}} and "-- dialect: sqlite" blocks), or one set
// of files per dialect. Each component (the store itself is "core"; others are
// e.g. "matrix", "xmpp", "provider", "bus") is versioned independently in the
// table store_schema_migrations.
//
// Files (top level only) are named
// "NNNN_description.sql": a decimal version starting at 1 and without gaps,
// an underscore or dash, and a description. Each file may contain several
// statements. A migration must not contain its own BEGIN/COMMIT. Every
// dialect that is given must have exactly the same versions, so a migration
// cannot be forgotten for one backend. Applied migrations must never be
// edited; add a new version instead.
type Migrations struct {
	// Component names the schema owner; lowercase letters, digits, '_', '-'
	// and '.', at most 64 bytes.
	Component string
	// Files holds one file per version, rendered for each dialect (the
	// layout of MigrationsFromFS). Set either Files or Dialects.
	Files fs.FS
	// Dialects holds migration files per dialect, used as they are. The
	// store's own dialect must be present.
	Dialects map[Dialect]fs.FS
	// Sealed lists the component's columns whose values are sealed (see
	// SealedColumn). Migrate records them after applying the schema, and the
	// first time seals the values they already hold, in the same
	// transaction.
	Sealed []SealedColumn
}

// MigrationsFromFS builds a Migrations from the files in directory dir of
// fsys, one per version for both dialects, the usual layout with go:embed:
//
//	//go:embed migrations
//	var migrationFS embed.FS
//	var Schema = store.MustMigrationsFromFS("matrix", migrationFS, "migrations")
//
// The directory must hold at least one migration file.
func MigrationsFromFS(component string, fsys fs.FS, dir string) (Migrations, error) {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		return Migrations{}, fmt.Errorf("store: migrations %q: directory %s: %w", component, dir, err)
	}
	sqlFiles, err := fs.Glob(sub, "*.sql")
	if err != nil {
		return Migrations{}, fmt.Errorf("store: migrations %q: read directory %s: %w", component, dir, err)
	}
	if len(sqlFiles) == 0 {
		return Migrations{}, fmt.Errorf("%w: migrations %q: no .sql files in directory %s", ErrInvalidArgument, component, dir)
	}
	m := Migrations{Component: component, Files: sub}
	if err := m.Validate(); err != nil {
		return Migrations{}, err
	}
	return m, nil
}

// MustMigrationsFromFS is MigrationsFromFS that panics on error; use it only
// for package-level variables over embedded files, where an error is a
// programming mistake caught by any test.
func MustMigrationsFromFS(component string, fsys fs.FS, dir string) Migrations {
	m, err := MigrationsFromFS(component, fsys, dir)
	if err != nil {
		panic(err)
	}
	return m
}

// migration is one parsed file.
type migration struct {
	version  int
	name     string
	sql      string
	checksum string
}

var componentRe = regexp.MustCompile(`^[a-z][a-z0-9_.-]*$`)

// Validate checks the component name, the file names of every dialect, and
// that all dialects have the same versions.
func (m Migrations) Validate() error {
	if len(m.Component) > maxComponentLen || !componentRe.MatchString(m.Component) {
		return fmt.Errorf("%w: migration component %q (want lowercase [a-z0-9_.-], at most %d bytes)", ErrInvalidArgument, m.Component, maxComponentLen)
	}
	if len(m.Dialects) == 0 && m.Files == nil {
		return fmt.Errorf("%w: migrations %q have no files", ErrInvalidArgument, m.Component)
	}
	if len(m.Dialects) > 0 && m.Files != nil {
		return fmt.Errorf("%w: migrations %q have both Files and Dialects", ErrInvalidArgument, m.Component)
	}
	for _, c := range m.Sealed {
		if err := c.Validate(); err != nil {
			return err
		}
	}
	var first []int
	var firstDialect Dialect
	dialects := m.dialects()
	for _, d := range dialects {
		if d != SQLite && d != Postgres {
			return fmt.Errorf("%w: migrations %q: unknown dialect %q", ErrInvalidArgument, m.Component, d)
		}
		ms, err := m.load(d)
		if err != nil {
			return err
		}
		versions := make([]int, len(ms))
		for i, mg := range ms {
			versions[i] = mg.version
		}
		if first == nil {
			first, firstDialect = versions, d
			continue
		}
		if !slices.Equal(first, versions) {
			return fmt.Errorf("%w: migrations %q: %s has versions %v but %s has %v", ErrInvalidArgument, m.Component, firstDialect, first, d, versions)
		}
	}
	return nil
}

// dialects lists the dialects m has files for, sorted.
func (m Migrations) dialects() []Dialect {
	if m.Files != nil {
		return []Dialect{Postgres, SQLite}
	}
	dialects := make([]Dialect, 0, len(m.Dialects))
	for d := range m.Dialects {
		dialects = append(dialects, d)
	}
	slices.Sort(dialects)
	return dialects
}

// load reads and orders the migrations of dialect d.
func (m Migrations) load(d Dialect) ([]migration, error) {
	fsys, ok := m.Dialects[d]
	if m.Files != nil {
		fsys, ok = m.Files, d == SQLite || d == Postgres
	}
	if !ok || fsys == nil {
		return nil, fmt.Errorf("%w: migrations %q have no files for dialect %s", ErrInvalidArgument, m.Component, d)
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("store: migrations %q (%s): %w", m.Component, d, err)
	}
	var out []migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		v, name, err := parseMigrationName(e.Name())
		if err != nil {
			return nil, fmt.Errorf("store: migrations %q (%s): %w", m.Component, d, err)
		}
		b, err := readLimited(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("store: migrations %q (%s): %w", m.Component, d, err)
		}
		if m.Files != nil {
			// The checksum is the rendered text's: a file with markers that
			// renders to an earlier per-dialect file's bytes keeps its checksum.
			if b, err = renderDialect(b, d); err != nil {
				return nil, fmt.Errorf("store: migrations %q (%s): %s: %w", m.Component, d, e.Name(), err)
			}
		}
		sum := sha256.Sum256(b)
		out = append(out, migration{version: v, name: name, sql: string(b), checksum: hex.EncodeToString(sum[:])})
		if len(out) > maxMigrations {
			return nil, fmt.Errorf("%w: migrations %q (%s): more than %d files", ErrInvalidArgument, m.Component, d, maxMigrations)
		}
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	for i, mg := range out {
		if mg.version != i+1 {
			return nil, fmt.Errorf("%w: migrations %q (%s): expected version %d, found %d (%s): versions must start at 1 without gaps or duplicates",
				ErrInvalidArgument, m.Component, d, i+1, mg.version, mg.name)
		}
	}
	return out, nil
}

func readLimited(fsys fs.FS, name string) ([]byte, error) {
	info, err := fs.Stat(fsys, name)
	if err != nil {
		return nil, err
	}
	if info.Size() > maxMigrationFileLen {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrInvalidArgument, name, maxMigrationFileLen)
	}
	return fs.ReadFile(fsys, name)
}

// parseMigrationName splits "0003_add_index.sql" into 3 and the file name.
func parseMigrationName(file string) (int, string, error) {
	base := strings.TrimSuffix(file, ".sql")
	i := strings.IndexAny(base, "_-")
	if i <= 0 {
		return 0, "", fmt.Errorf("%w: migration file %q is not named NNNN_description.sql", ErrInvalidArgument, file)
	}
	v, err := strconv.Atoi(base[:i])
	if err != nil || v <= 0 || v > maxMigrations {
		return 0, "", fmt.Errorf("%w: migration file %q has no valid version prefix", ErrInvalidArgument, file)
	}
	return v, file, nil
}

const createSchemaTable = `CREATE TABLE IF NOT EXISTS store_schema_migrations (
	component  TEXT    NOT NULL,
	version    INTEGER NOT NULL,
	name       TEXT    NOT NULL,
	checksum   TEXT    NOT NULL,
	applied_at BIGINT  NOT NULL,
	PRIMARY KEY (component, version)
)`

// Migrate applies the pending migrations of each set, in order, for the
// store's dialect. Each set is applied in one transaction: either all its
// pending versions are applied and recorded, or none. It is idempotent and
// safe to run from several processes at once (PostgreSQL: an advisory
// transaction lock per schema; SQLite: the write lock). It returns a
// *SchemaTooNewError (errors.Is ErrSchemaTooNew) when the database has a
// version this binary does not know, and applies nothing for that set.
func (s *Store) Migrate(ctx context.Context, sets ...Migrations) error {
	for _, m := range sets {
		if err := m.Validate(); err != nil {
			return err
		}
		ms, err := m.load(s.dialect)
		if err != nil {
			return err
		}
		if err := s.migrateOne(ctx, m.Component, ms, m.Sealed); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) migrateOne(ctx context.Context, component string, ms []migration, sealed []SealedColumn) error {
	var applied []string
	err := s.InTx(ctx, func(tx *Tx) error {
		if s.dialect == Postgres {
			if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext('mimi-gateway.migrate.' || current_schema()))`); err != nil {
				return fmt.Errorf("store: migration lock: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, createSchemaTable); err != nil {
			return fmt.Errorf("store: create schema table: %w", err)
		}
		known := map[int]string{}
		rows, err := tx.QueryContext(ctx, `SELECT version, checksum FROM store_schema_migrations WHERE component = ?`, component)
		if err != nil {
			return fmt.Errorf("store: read schema version of %q: %w", component, err)
		}
		current := 0
		for rows.Next() {
			var v int
			var sum string
			if err := rows.Scan(&v, &sum); err != nil {
				_ = rows.Close()
				return fmt.Errorf("store: read schema version of %q: %w", component, err)
			}
			known[v] = sum
			current = max(current, v)
		}
		if err := rows.Close(); err != nil {
			return fmt.Errorf("store: read schema version of %q: %w", component, err)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store: read schema version of %q: %w", component, err)
		}
		if current > len(ms) {
			return &SchemaTooNewError{Component: component, DatabaseVersion: current, BinaryVersion: len(ms)}
		}
		for _, mg := range ms[:current] {
			if sum, ok := known[mg.version]; ok && sum != mg.checksum {
				s.log.Warn("applied migration differs from the one in this binary; never edit applied migrations",
					"schema", component, "version", mg.version, "file", mg.name)
			}
		}
		for _, mg := range ms[current:] {
			if _, err := tx.ExecContext(ctx, mg.sql); err != nil {
				return fmt.Errorf("store: migration %s %s: %w", component, mg.name, err)
			}
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO store_schema_migrations (component, version, name, checksum, applied_at) VALUES (?, ?, ?, ?, ?)`,
				component, mg.version, mg.name, mg.checksum, s.nowMillis()); err != nil {
				return fmt.Errorf("store: record migration %s %s: %w", component, mg.name, err)
			}
			applied = append(applied, mg.name)
		}
		for _, c := range sealed {
			if err := s.registerSealed(ctx, tx, component, c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, name := range applied {
		s.log.Info("applied migration", "schema", component, "file", name)
	}
	s.metrics.setSchemaVersion(component, len(ms))
	return nil
}

// SchemaVersion returns the highest applied migration version of component,
// or 0 when none has been applied.
func (s *Store) SchemaVersion(ctx context.Context, component string) (int, error) {
	var v sql.NullInt64
	err := s.QueryRowContext(ctx, `SELECT MAX(version) FROM store_schema_migrations WHERE component = ?`, component).Scan(&v)
	if err != nil {
		if isMissingTable(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("store: schema version of %q: %w", component, err)
	}
	return int(v.Int64), nil
}

func isMissingTable(err error) bool {
	// Used only before the first migration; message matching is acceptable
	// here because both drivers' wording is stable and the fallback is an
	// error anyway.
	msg := err.Error()
	return strings.Contains(msg, "no such table") || strings.Contains(msg, "does not exist")
}

//go:embed migrations
var coreMigrationFS embed.FS

// CoreComponent is the migration component name of the store's own tables
// (processed events, key-value).
const CoreComponent = "core"

func coreMigrations() Migrations {
	m := MustMigrationsFromFS(CoreComponent, coreMigrationFS, "migrations")
	m.Sealed = []SealedColumn{kvValue}
	return m
}
