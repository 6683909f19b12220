package store

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Sentinel errors returned by the store. Test for them with errors.Is.
var (
	// ErrNotFound is returned when a key or row does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict is returned by compare-and-swap operations whose expected
	// version did not match the stored one.
	ErrConflict = errors.New("store: version conflict")
	// ErrSchemaTooNew is matched by *SchemaTooNewError: the database was
	// migrated by a newer binary than this one.
	ErrSchemaTooNew = errors.New("store: database schema is newer than this binary")
	// ErrInvalidArgument is returned for empty or oversized keys, scopes and
	// values, and for invalid configuration.
	ErrInvalidArgument = errors.New("store: invalid argument")
	// ErrClosed is returned by operations on a closed store.
	ErrClosed = errors.New("store: closed")
)

// SchemaTooNewError reports that a component's schema in the database is at a
// higher version than the migrations compiled into this binary know. Running
// an older binary against such a database could corrupt it, so Open and
// Migrate refuse. It matches ErrSchemaTooNew with errors.Is.
type SchemaTooNewError struct {
	// Component is the migration set's component name, e.g. "core".
	Component string
	// DatabaseVersion is the version recorded in the database.
	DatabaseVersion int
	// BinaryVersion is the highest version this binary knows.
	BinaryVersion int
}

// Error implements error.
func (e *SchemaTooNewError) Error() string {
	return fmt.Sprintf("store: schema of component %q is at version %d, this binary knows only up to %d (upgrade the binary or restore a backup)",
		e.Component, e.DatabaseVersion, e.BinaryVersion)
}

// Is makes errors.Is(err, ErrSchemaTooNew) true.
func (e *SchemaTooNewError) Is(target error) bool { return target == ErrSchemaTooNew }

// IsUniqueViolation reports whether err is a unique or primary-key constraint
// violation on either backend (SQLite extended codes
// SQLITE_CONSTRAINT_UNIQUE/PRIMARYKEY, PostgreSQL SQLSTATE 23505).
func IsUniqueViolation(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return true
		}
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23505"
	}
	return false
}

// IsForeignKeyViolation reports whether err is a foreign-key constraint
// violation on either backend (SQLITE_CONSTRAINT_FOREIGNKEY, SQLSTATE 23503).
func IsForeignKeyViolation(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23503"
	}
	return false
}

// isBusy reports whether err is SQLITE_BUSY or SQLITE_LOCKED (any extended
// code). The store counts these in a metric; with the single writer
// connection they should never occur within one process.
func isBusy(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		c := se.Code() & 0xff
		return c == sqlite3.SQLITE_BUSY || c == sqlite3.SQLITE_LOCKED
	}
	return false
}

// IsRetryable reports whether a transaction failed only because of
// concurrency and can be retried as a whole: PostgreSQL serialization
// failures (SQLSTATE 40001) and deadlocks (40P01), or SQLite BUSY/LOCKED
// after the busy timeout (only possible with another process on the file).
// ErrConflict from KV compare-and-swap is a separate, expected outcome.
func IsRetryable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "40001" || pe.Code == "40P01"
	}
	return isBusy(err)
}
