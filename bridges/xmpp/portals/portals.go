// Package portals keeps the XMPP adapter's portals: which MIMI room appears as which MUC on the
// rooms component or as a 1:1 chat (the adapter's xmpp_rooms table), and the 1:1 chats' pairs.
// XMPP shows one chat per pair of a local user and a MIMI user, however many 1:1 rooms the pair
// has in MIMI: every room of a pair names it (xmpp_dm_rooms), and one of them is the pair's
// current room, where the local user's messages go (xmpp_dms).
package portals

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// Kind says how a MIMI room appears on XMPP.
type Kind string

// The kinds of portal.
const (
	KindMUC Kind = "muc" // a MUC on the rooms component
	KindDM  Kind = "dm"  // a 1:1 chat between a local user and a puppet
)

// Room is a portal: a MIMI room and how it appears on XMPP.
type Room struct {
	URI      event.RoomURI
	MUCLocal string // localpart on the rooms component (also set for DMs, unused there)
	Kind     Kind
	Name     string
	Subject  string
}

// Pair is the 1:1 conversation behind a KindDM room: a local user and a MIMI user.
type Pair struct {
	Local string // the local user's bare JID
	Peer  event.UserURI
}

// DMLocal is the local part of the URI of the 1:1 room that the gateway creates for pair p when
// its local user writes first: derived from the pair with the adapter's secret key, so that a
// retry after a crash names the same room.
func DMLocal(key []byte, p Pair) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte("dm:" + p.Local + "\x00" + string(p.Peer)))
	return "dm-" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(mac.Sum(nil)[:15]))
}

// ErrNoRoom is returned when a room has no portal, and a 1:1 room or a pair is not known.
var ErrNoRoom = errors.New("xmpp: no portal for room")

// Table is the adapter's portal tables (xmpp_rooms, xmpp_dm_rooms, xmpp_dms).
type Table struct {
	S   *store.Store
	Now func() time.Time
}

func (t Table) roomBy(ctx context.Context, where string, arg any) (Room, error) {
	var r Room
	var uri, kind string
	err := t.S.QueryRowContext(ctx, `SELECT room_uri, muc_local, kind, name, subject FROM xmpp_rooms WHERE `+where+` = ?`, arg).
		Scan(&uri, &r.MUCLocal, &kind, &r.Name, &r.Subject)
	if errors.Is(err, sql.ErrNoRows) {
		return Room{}, ErrNoRoom
	}
	if err != nil {
		return Room{}, fmt.Errorf("xmpp: look up room: %w", err)
	}
	r.URI, r.Kind = event.RoomURI(uri), Kind(kind)
	return r, nil
}

// Room returns the portal of the MIMI room uri.
func (t Table) Room(ctx context.Context, uri event.RoomURI) (Room, error) {
	return t.roomBy(ctx, "room_uri", string(uri))
}

// ByLocal returns the portal whose MUC localpart is local.
func (t Table) ByLocal(ctx context.Context, local string) (Room, error) {
	return t.roomBy(ctx, "muc_local", local)
}

// Create stores a portal; it returns created=false when the room already exists.
func (t Table) Create(ctx context.Context, r Room) (bool, error) {
	res, err := t.S.ExecContext(ctx, `INSERT INTO xmpp_rooms (room_uri, muc_local, kind, name, subject, created_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, string(r.URI), r.MUCLocal, string(r.Kind), r.Name, r.Subject, t.Now().UnixMilli())
	if err != nil {
		return false, fmt.Errorf("xmpp: create room: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("xmpp: create room: %w", err)
	}
	return n == 1, nil
}

// SetMetadata changes the name and the subject of a portal, each only when not nil.
func (t Table) SetMetadata(ctx context.Context, uri event.RoomURI, name, subject *string) error {
	if name != nil {
		if _, err := t.S.ExecContext(ctx, `UPDATE xmpp_rooms SET name = ? WHERE room_uri = ?`, *name, string(uri)); err != nil {
			return fmt.Errorf("xmpp: set room name: %w", err)
		}
	}
	if subject != nil {
		if _, err := t.S.ExecContext(ctx, `UPDATE xmpp_rooms SET subject = ? WHERE room_uri = ?`, *subject, string(uri)); err != nil {
			return fmt.Errorf("xmpp: set room subject: %w", err)
		}
	}
	return nil
}

// CreateDM stores the room of a 1:1 conversation in one transaction. A pair has one chat however
// many 1:1 rooms it has (a partner may start another): the new room becomes its current room.
func (t Table) CreateDM(ctx context.Context, r Room, c Pair) error {
	return t.S.InTx(ctx, func(tx *store.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO xmpp_rooms (room_uri, muc_local, kind, name, subject, created_at)
			VALUES (?, ?, 'dm', '', '', ?) ON CONFLICT DO NOTHING`, string(r.URI), r.MUCLocal, t.Now().UnixMilli()); err != nil {
			return fmt.Errorf("xmpp: create 1:1 room: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO xmpp_dm_rooms (room_uri, local_jid, peer_uri) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
			string(r.URI), c.Local, string(c.Peer)); err != nil {
			return fmt.Errorf("xmpp: create 1:1 room: %w", err)
		}
		return setCurrent(ctx, tx, c, r.URI)
	})
}

// setCurrent makes uri the current room of pair c: the local user's messages to the peer's
// puppet go there.
func setCurrent(ctx context.Context, tx *store.Tx, c Pair, uri event.RoomURI) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO xmpp_dms (local_jid, peer_uri, room_uri) VALUES (?, ?, ?)
		ON CONFLICT (local_jid, peer_uri) DO UPDATE SET room_uri = excluded.room_uri`, c.Local, string(c.Peer), string(uri)); err != nil {
		return fmt.Errorf("xmpp: current 1:1 room: %w", err)
	}
	return nil
}

// UseDM makes uri, a 1:1 room of pair c that the peer just wrote in, the pair's current room (if
// it is not already), so that the local user's answer goes to the room the peer is writing in.
func (t Table) UseDM(ctx context.Context, c Pair, uri event.RoomURI) error {
	cur, err := t.DMRoom(ctx, c.Local, c.Peer)
	if err != nil && !errors.Is(err, ErrNoRoom) {
		return err
	}
	if cur == uri {
		return nil
	}
	return t.S.InTx(ctx, func(tx *store.Tx) error { return setCurrent(ctx, tx, c, uri) })
}

// DMRoom returns the current room of the pair of local (a bare JID) and peer.
func (t Table) DMRoom(ctx context.Context, local string, peer event.UserURI) (event.RoomURI, error) {
	var uri string
	err := t.S.QueryRowContext(ctx, `SELECT room_uri FROM xmpp_dms WHERE local_jid = ? AND peer_uri = ?`, local, string(peer)).Scan(&uri)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNoRoom
	}
	if err != nil {
		return "", fmt.Errorf("xmpp: look up 1:1 room: %w", err)
	}
	return event.RoomURI(uri), nil
}

// PairOf returns the pair that the 1:1 room uri belongs to.
func (t Table) PairOf(ctx context.Context, uri event.RoomURI) (Pair, error) {
	var c Pair
	var peer string
	err := t.S.QueryRowContext(ctx, `SELECT local_jid, peer_uri FROM xmpp_dm_rooms WHERE room_uri = ?`, string(uri)).Scan(&c.Local, &peer)
	if errors.Is(err, sql.ErrNoRows) {
		return Pair{}, ErrNoRoom
	}
	if err != nil {
		return Pair{}, fmt.Errorf("xmpp: look up 1:1 conversation: %w", err)
	}
	c.Peer = event.UserURI(peer)
	return c, nil
}
