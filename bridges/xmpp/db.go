package xmpp

import (
	"context"
	"embed"
	"time"

	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/occupants"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/portals"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xhistory"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// Component is the migration component name of the adapter's tables.
const Component = "xmpp"

//go:embed migrations
var migrationFS embed.FS

// Schema is the migration set of the adapter's tables, with its sealed column. New applies it
// (and idmap.Schema).
var Schema = func() store.Migrations {
	m := store.MustMigrationsFromFS(Component, migrationFS, "migrations")
	m.Sealed = []store.SealedColumn{xhistory.Sealed}
	return m
}()

// kvScope is the adapter's key-value scope in core/store.
const kvScope store.Scope = "xmpp"

// db wraps the adapter's tables.
type db struct {
	s   *store.Store
	now func() time.Time
}

// occ is the occupants table of the gateway's MUCs.
func (d *db) occ() occupants.Table { return occupants.Table{S: d.s, Now: d.now} }

// portals is the table of the MIMI rooms shown as MUCs or 1:1 chats.
func (d *db) portals() portals.Table { return portals.Table{S: d.s, Now: d.now} }

// PruneHistory deletes the room history entries sent before `before` (retention of MUC history)
// and returns how many it deleted (xhistory.Prune).
func PruneHistory(ctx context.Context, st *store.Store, before time.Time) (int64, error) {
	return xhistory.Prune(ctx, st, before)
}
