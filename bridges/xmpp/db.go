package xmpp

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/occupants"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xhistory"
	"github.com/mimi-gateway/mimi-gateway/core/event"
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

// roomKind says how a MIMI room appears on XMPP.
type roomKind string

const (
	kindMUC roomKind = "muc" // a MUC on the rooms component
	kindDM  roomKind = "dm"  // a 1:1 chat between a local user and a puppet
)

// room is a portal: a MIMI room and how it appears on XMPP.
type room struct {
	URI      event.RoomURI
	MUCLocal string // localpart on the rooms component (also set for DMs, unused there)
	Kind     roomKind
	Name     string
	Subject  string
}

// dm is the 1:1 conversation behind a kindDM room.
type dm struct {
	Local string // the local user's bare JID
	Peer  event.UserURI
}

// Lookup errors of the adapter's tables.
var (
	// errNoRoom is returned when a room has no portal.
	errNoRoom = errors.New("xmpp: no portal for room")
)

// db wraps the adapter's tables.
type db struct {
	s   *store.Store
	now func() time.Time
}

// occ is the occupants table of the gateway's MUCs.
func (d *db) occ() occupants.Table { return occupants.Table{S: d.s, Now: d.now} }

func (d *db) roomBy(ctx context.Context, where string, arg any) (room, error) {
	var r room
	var uri, kind string
	err := d.s.QueryRowContext(ctx, `SELECT room_uri, muc_local, kind, name, subject FROM xmpp_rooms WHERE `+where+` = ?`, arg).
		Scan(&uri, &r.MUCLocal, &kind, &r.Name, &r.Subject)
	if errors.Is(err, sql.ErrNoRows) {
		return room{}, errNoRoom
	}
	if err != nil {
		return room{}, fmt.Errorf("xmpp: look up room: %w", err)
	}
	r.URI, r.Kind = event.RoomURI(uri), roomKind(kind)
	return r, nil
}

func (d *db) room(ctx context.Context, uri event.RoomURI) (room, error) {
	return d.roomBy(ctx, "room_uri", string(uri))
}

func (d *db) roomByLocal(ctx context.Context, local string) (room, error) {
	return d.roomBy(ctx, "muc_local", local)
}

// createRoom stores a portal; it returns created=false when the room already exists.
func (d *db) createRoom(ctx context.Context, r room) (bool, error) {
	res, err := d.s.ExecContext(ctx, `INSERT INTO xmpp_rooms (room_uri, muc_local, kind, name, subject, created_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, string(r.URI), r.MUCLocal, string(r.Kind), r.Name, r.Subject, d.now().UnixMilli())
	if err != nil {
		return false, fmt.Errorf("xmpp: create room: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("xmpp: create room: %w", err)
	}
	return n == 1, nil
}

func (d *db) setMetadata(ctx context.Context, uri event.RoomURI, name, subject *string) error {
	if name != nil {
		if _, err := d.s.ExecContext(ctx, `UPDATE xmpp_rooms SET name = ? WHERE room_uri = ?`, *name, string(uri)); err != nil {
			return fmt.Errorf("xmpp: set room name: %w", err)
		}
	}
	if subject != nil {
		if _, err := d.s.ExecContext(ctx, `UPDATE xmpp_rooms SET subject = ? WHERE room_uri = ?`, *subject, string(uri)); err != nil {
			return fmt.Errorf("xmpp: set room subject: %w", err)
		}
	}
	return nil
}

// createDM stores the room of a 1:1 conversation in one transaction. A pair has one chat however
// many 1:1 rooms it has (a partner may start another): the new room becomes its current room.
func (d *db) createDM(ctx context.Context, r room, c dm) error {
	return d.s.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO xmpp_rooms (room_uri, muc_local, kind, name, subject, created_at)
			VALUES (?, ?, 'dm', '', '', ?) ON CONFLICT DO NOTHING`, string(r.URI), r.MUCLocal, d.now().UnixMilli()); err != nil {
			return fmt.Errorf("xmpp: create 1:1 room: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO xmpp_dm_rooms (room_uri, local_jid, peer_uri) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
			string(r.URI), c.Local, string(c.Peer)); err != nil {
			return fmt.Errorf("xmpp: create 1:1 room: %w", err)
		}
		return setCurrentDM(ctx, tx, c, r.URI)
	})
}

// setCurrentDM makes uri the current room of pair c: the local user's messages to the peer's
// puppet go there.
func setCurrentDM(ctx context.Context, tx *store.Tx, c dm, uri event.RoomURI) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO xmpp_dms (local_jid, peer_uri, room_uri) VALUES (?, ?, ?)
		ON CONFLICT (local_jid, peer_uri) DO UPDATE SET room_uri = excluded.room_uri`, c.Local, string(c.Peer), string(uri)); err != nil {
		return fmt.Errorf("xmpp: current 1:1 room: %w", err)
	}
	return nil
}

// useDM makes uri, a 1:1 room of pair c that the peer just wrote in, the pair's current room (if
// it is not already), so that the local user's answer goes to the room the peer is writing in.
func (d *db) useDM(ctx context.Context, c dm, uri event.RoomURI) error {
	cur, err := d.dmRoom(ctx, c.Local, c.Peer)
	if err != nil && !errors.Is(err, errNoRoom) {
		return err
	}
	if cur == uri {
		return nil
	}
	return d.s.InTx(ctx, func(tx *store.Tx) error { return setCurrentDM(ctx, tx, c, uri) })
}

func (d *db) dmRoom(ctx context.Context, local string, peer event.UserURI) (event.RoomURI, error) {
	var uri string
	err := d.s.QueryRowContext(ctx, `SELECT room_uri FROM xmpp_dms WHERE local_jid = ? AND peer_uri = ?`, local, string(peer)).Scan(&uri)
	if errors.Is(err, sql.ErrNoRows) {
		return "", errNoRoom
	}
	if err != nil {
		return "", fmt.Errorf("xmpp: look up 1:1 room: %w", err)
	}
	return event.RoomURI(uri), nil
}

func (d *db) dmOf(ctx context.Context, uri event.RoomURI) (dm, error) {
	var c dm
	var peer string
	err := d.s.QueryRowContext(ctx, `SELECT local_jid, peer_uri FROM xmpp_dm_rooms WHERE room_uri = ?`, string(uri)).Scan(&c.Local, &peer)
	if errors.Is(err, sql.ErrNoRows) {
		return dm{}, errNoRoom
	}
	if err != nil {
		return dm{}, fmt.Errorf("xmpp: look up 1:1 conversation: %w", err)
	}
	c.Peer = event.UserURI(peer)
	return c, nil
}

// PruneHistory deletes the room history entries sent before `before` (retention of MUC history)
// and returns how many it deleted (xhistory.Prune).
func PruneHistory(ctx context.Context, st *store.Store, before time.Time) (int64, error) {
	return xhistory.Prune(ctx, st, before)
}
