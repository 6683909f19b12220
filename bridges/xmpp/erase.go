package xmpp

import (
	"context"
	"fmt"
	"time"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xhistory"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// EraseUser deletes what the adapter's tables hold about user u (bare JID jid when u is a local
// user): room memberships, occupants, roles, 1:1 pairings, its opaque address, and the room
// history it wrote (by the nicks it used). It returns how many rows it deleted.
func EraseUser(ctx context.Context, st *store.Store, u event.UserURI, jid string) (int64, error) {
	// The nicks under which u's messages are in the history, before the rows that name them go.
	type roomNick struct{ room, nick string }
	var nicks []roomNick
	rows, err := st.QueryContext(ctx, `SELECT room_uri, nick FROM xmpp_members WHERE user_uri = ?
		UNION SELECT room_uri, nick FROM xmpp_occupants WHERE bare_jid = ?`, string(u), jid)
	if err != nil {
		return 0, fmt.Errorf("xmpp: erase: nicks: %w", err)
	}
	for rows.Next() {
		var rn roomNick
		if err := rows.Scan(&rn.room, &rn.nick); err != nil {
			rows.Close()
			return 0, err
		}
		nicks = append(nicks, rn)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	e := bridges.NewErasure(st, "xmpp: erase")
	for _, rn := range nicks {
		e.Delete(ctx, "xmpp_history", []string{"seq"}, `room_uri = ? AND nick = ?`, rn.room, rn.nick)
	}
	e.Delete(ctx, "xmpp_members", []string{"room_uri", "user_uri"}, `user_uri = ?`, string(u))
	e.Delete(ctx, "xmpp_roles", []string{"room_uri", "user_uri"}, `user_uri = ?`, string(u))
	e.Delete(ctx, "xmpp_occupants", []string{"room_uri", "full_jid"}, `bare_jid = ?`, jid)
	e.Delete(ctx, "xmpp_dms", []string{"local_jid", "peer_uri"}, `local_jid = ?`, jid)
	e.Delete(ctx, "xmpp_dms", []string{"local_jid", "peer_uri"}, `peer_uri = ?`, string(u))
	e.Delete(ctx, "xmpp_dm_rooms", []string{"room_uri"}, `local_jid = ?`, jid)
	e.Delete(ctx, "xmpp_dm_rooms", []string{"room_uri"}, `peer_uri = ?`, string(u))
	e.Delete(ctx, "xmpp_opaque", []string{"local"}, `uri = ?`, string(u))
	return e.Result()
}

// HistoryEntry is one stored room history entry of a user.
type HistoryEntry struct {
	Room    string
	Nick    string
	SentAt  time.Time
	Payload string
}

// UserHistory returns the room history entries user u (bare JID jid when local) wrote, opened,
// for an export of the user's data.
func UserHistory(ctx context.Context, st *store.Store, u event.UserURI, jid string) ([]HistoryEntry, error) {
	rows, err := st.QueryContext(ctx, `SELECT h.room_uri, h.stanza_id, h.nick, h.payload, h.sent_at FROM xmpp_history h
		WHERE EXISTS (SELECT 1 FROM xmpp_members m WHERE m.room_uri = h.room_uri AND m.nick = h.nick AND m.user_uri = ?)
		   OR EXISTS (SELECT 1 FROM xmpp_occupants o WHERE o.room_uri = h.room_uri AND o.nick = h.nick AND o.bare_jid = ?)
		ORDER BY h.seq`, string(u), jid)
	if err != nil {
		return nil, fmt.Errorf("xmpp: user history: %w", err)
	}
	defer rows.Close()
	var out []HistoryEntry
	for rows.Next() {
		var e HistoryEntry
		var stanza string
		var sealed []byte
		var at int64
		if err := rows.Scan(&e.Room, &stanza, &e.Nick, &sealed, &at); err != nil {
			return nil, fmt.Errorf("xmpp: user history: %w", err)
		}
		pt, err := st.Unseal(xhistory.Sealed, sealed, e.Room, stanza)
		if err != nil {
			return nil, fmt.Errorf("xmpp: user history: %w", err)
		}
		e.Payload, e.SentAt = string(pt), time.UnixMilli(at)
		out = append(out, e)
	}
	return out, rows.Err()
}
