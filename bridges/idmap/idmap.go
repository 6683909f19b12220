// Package idmap is the persistent mapping between native message IDs (Matrix event IDs, XMPP
// stanza IDs) and MIMI message IDs, shared by the network adapters.
//
// A native ID is scoped by network, native room and native sender: some networks (XMPP) do not
// guarantee unique stanza IDs, so two users may send the same ID in one room. Looking a message up
// by (room, ID, sender) is how an adapter makes sure that an edit or retraction comes from the
// original sender (the matterbridge #1396 lesson): a correction from Mallory that carries Alice's
// stanza ID simply finds nothing. Several native IDs may point at one MIMI message (an XMPP
// origin-id, the MUC stanza-id, every ID of a correction chain); one of them is marked Primary, the
// ID to use when the adapter refers to the message natively.
//
// Reactions: MIMI carries one reaction per message, XMPP (XEP-0444) the full set a user has on a
// message. The reaction table keeps, per (room, target message, reactor, emoji), the MIMI message
// that added the reaction, so adapters can diff sets and unreact by replacing that message.
//
// All methods work on a store.Querier: pass the *store.Store, or a *store.Tx to write the mapping
// in the same transaction as the caller's other state.
package idmap

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// Component is the migration component name of this package's tables.
const Component = "idmap"

//go:embed migrations
var migrationFS embed.FS

// Schema is the migration set of the idmap tables, for store.Open(..., store.WithMigrations(idmap.Schema)).
var Schema = store.MustMigrationsFromFS(Component, migrationFS, "migrations")

// Input limits. Longer values are refused with ErrInvalid.
const (
	// MaxNativeLen bounds native room, event and sender IDs and room URIs.
	MaxNativeLen = 1024
	// MaxMessageIDLen bounds MIMI message IDs (32 bytes in content-08).
	MaxMessageIDLen = 64
	// MaxEmojiLen bounds a reaction's text.
	MaxEmojiLen = 256
	// MaxResults bounds the rows a lookup returns.
	MaxResults = 256
)

// Errors. Test with errors.Is.
var (
	// ErrNotFound is returned when no mapping exists.
	ErrNotFound = errors.New("idmap: not found")
	// ErrConflict is returned by Put when the native ID is already mapped to another MIMI message.
	ErrConflict = errors.New("idmap: native ID already mapped to another message")
	// ErrInvalid is returned for empty, oversized or non-UTF-8 input.
	ErrInvalid = errors.New("idmap: invalid argument")
)

// Message maps one native message ID to a MIMI message.
type Message struct {
	// Network is the legacy network of the native ID.
	Network event.Network
	// NativeRoom is the native room (Matrix room ID, MUC or 1:1 peer bare JID).
	NativeRoom event.NativeRoomID
	// NativeID is the native message ID.
	NativeID event.NativeEventID
	// NativeSender is who sent the native message (a Matrix user ID, a bare JID). Empty when the ID
	// was assigned by the room rather than by a sender (a MUC stanza-id).
	NativeSender event.NativeUserID
	// Room is the MIMI room.
	Room event.RoomURI
	// MessageID is the MIMI message ID.
	MessageID []byte
	// EventID is the envelope ID that carried the message on the bus.
	EventID event.EventID
	// Primary marks the native ID to use when referring to the message natively.
	Primary bool
	// CreatedAt is when the mapping was stored (set by Put).
	CreatedAt time.Time
}

// Reaction is one reaction of one user on one message.
type Reaction struct {
	// Room is the MIMI room.
	Room event.RoomURI
	// Target is the MIMI message ID reacted to.
	Target []byte
	// Reactor is the MIMI user who reacted.
	Reactor event.UserURI
	// Emoji is the reaction's text.
	Emoji string
	// MessageID is the MIMI message ID of the reaction message (what an unreact replaces).
	MessageID []byte
	// EventID is the envelope ID that carried the reaction.
	EventID event.EventID
	// CreatedAt is when the reaction was stored (set by PutReaction).
	CreatedAt time.Time
}

// Map reads and writes the mapping tables.
type Map struct {
	q   store.Querier
	now func() time.Time
}

// New returns a Map on q (a *store.Store, or a *store.Tx for transactional use). The store must
// have been opened or migrated with Schema.
func New(q store.Querier) *Map { return &Map{q: q, now: time.Now} }

// WithClock returns a copy of m that timestamps rows with now (tests).
func (m *Map) WithClock(now func() time.Time) *Map { c := *m; c.now = now; return &c }

func checkText(what, v string, maxLen int, allowEmpty bool) error {
	switch {
	case v == "" && !allowEmpty:
		return fmt.Errorf("%w: empty %s", ErrInvalid, what)
	case len(v) > maxLen:
		return fmt.Errorf("%w: %s is %d bytes, limit %d", ErrInvalid, what, len(v), maxLen)
	case !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0:
		return fmt.Errorf("%w: %s is not valid UTF-8 without NUL", ErrInvalid, what)
	}
	return nil
}

func checkMessageID(what string, id []byte) error {
	if len(id) == 0 || len(id) > MaxMessageIDLen {
		return fmt.Errorf("%w: %s has %d bytes, want 1 to %d", ErrInvalid, what, len(id), MaxMessageIDLen)
	}
	return nil
}

func checkNative(n event.Network, room event.NativeRoomID, id event.NativeEventID) error {
	if !n.Valid() {
		return fmt.Errorf("%w: network %q", ErrInvalid, n)
	}
	if err := checkText("native room", string(room), MaxNativeLen, false); err != nil {
		return err
	}
	return checkText("native ID", string(id), MaxNativeLen, false)
}

func (msg *Message) validate() error {
	if err := checkNative(msg.Network, msg.NativeRoom, msg.NativeID); err != nil {
		return err
	}
	if err := checkText("native sender", string(msg.NativeSender), MaxNativeLen, true); err != nil {
		return err
	}
	if err := checkText("room URI", string(msg.Room), MaxNativeLen, false); err != nil {
		return err
	}
	if err := checkText("event ID", string(msg.EventID), MaxNativeLen, false); err != nil {
		return err
	}
	return checkMessageID("message ID", msg.MessageID)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Put stores msg. It returns inserted=false when the same native ID (same network, room and
// sender) is already mapped to the same MIMI message (a redelivery), and ErrConflict when it is
// mapped to a different one: a native ID never moves to another message.
func (m *Map) Put(ctx context.Context, msg Message) (inserted bool, err error) {
	if err := msg.validate(); err != nil {
		return false, err
	}
	res, err := m.q.ExecContext(ctx, `INSERT INTO idmap_messages
		(network, native_room, native_id, native_sender, room_uri, message_id, event_id, is_primary, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		string(msg.Network), string(msg.NativeRoom), string(msg.NativeID), string(msg.NativeSender),
		string(msg.Room), msg.MessageID, string(msg.EventID), boolInt(msg.Primary), m.now().UnixMilli())
	if err != nil {
		return false, fmt.Errorf("idmap: put %s message: %w", msg.Network, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("idmap: put %s message: rows affected: %w", msg.Network, err)
	}
	if n == 1 {
		return true, nil
	}
	old, err := m.Native(ctx, msg.Network, msg.NativeRoom, msg.NativeID, msg.NativeSender)
	if err != nil {
		return false, err
	}
	if old.Room != msg.Room || string(old.MessageID) != string(msg.MessageID) {
		return false, fmt.Errorf("%w: %s ID in room %q", ErrConflict, msg.Network, msg.NativeRoom)
	}
	return false, nil
}

const messageCols = `network, native_room, native_id, native_sender, room_uri, message_id, event_id, is_primary, created_at`

func scanMessage(sc interface{ Scan(...any) error }) (Message, error) {
	var (
		msg                           Message
		network, room, id, sender, ru string
		ev                            string
		primary                       int
		created                       int64
	)
	if err := sc.Scan(&network, &room, &id, &sender, &ru, &msg.MessageID, &ev, &primary, &created); err != nil {
		return Message{}, err
	}
	msg.Network, msg.NativeRoom, msg.NativeID, msg.NativeSender = event.Network(network), event.NativeRoomID(room), event.NativeEventID(id), event.NativeUserID(sender)
	msg.Room, msg.EventID, msg.Primary = event.RoomURI(ru), event.EventID(ev), primary == 1
	msg.CreatedAt = time.UnixMilli(created)
	return msg, nil
}

func (m *Map) queryMessages(ctx context.Context, what, query string, args ...any) ([]Message, error) {
	rows, err := m.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("idmap: %s: %w", what, err)
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		msg, err := scanMessage(rows)
		if err != nil {
			return nil, fmt.Errorf("idmap: %s: %w", what, err)
		}
		out = append(out, msg)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("idmap: %s: %w", what, err)
	}
	if len(out) == 0 {
		return nil, ErrNotFound
	}
	return out, nil
}

// Native returns the mapping of a native ID sent by sender. Use it for everything that must come
// from the original sender (edits, retractions): another sender's ID is ErrNotFound.
func (m *Map) Native(ctx context.Context, n event.Network, room event.NativeRoomID, id event.NativeEventID, sender event.NativeUserID) (Message, error) {
	if err := checkNative(n, room, id); err != nil {
		return Message{}, err
	}
	if err := checkText("native sender", string(sender), MaxNativeLen, true); err != nil {
		return Message{}, err
	}
	msg, err := scanMessage(m.q.QueryRowContext(ctx, `SELECT `+messageCols+` FROM idmap_messages
		WHERE network = ? AND native_room = ? AND native_id = ? AND native_sender = ?`,
		string(n), string(room), string(id), string(sender)))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return Message{}, ErrNotFound
	case err != nil:
		return Message{}, fmt.Errorf("idmap: look up %s message: %w", n, err)
	}
	return msg, nil
}

// NativeAny returns the mappings of a native ID in a room whoever sent it, oldest first. Use it
// where the sender of the referenced message is unknown (a reaction or reply to someone else's
// message); with XMPP the result may hold several messages when senders reused an ID.
func (m *Map) NativeAny(ctx context.Context, n event.Network, room event.NativeRoomID, id event.NativeEventID) ([]Message, error) {
	if err := checkNative(n, room, id); err != nil {
		return nil, err
	}
	return m.queryMessages(ctx, "look up "+string(n)+" message", `SELECT `+messageCols+` FROM idmap_messages
		WHERE network = ? AND native_room = ? AND native_id = ? ORDER BY created_at, native_sender LIMIT ?`,
		string(n), string(room), string(id), MaxResults)
}

// ByMessageID returns network n's native IDs of a MIMI message, the primary one first, then oldest
// first.
func (m *Map) ByMessageID(ctx context.Context, n event.Network, room event.RoomURI, msgID []byte) ([]Message, error) {
	if !n.Valid() {
		return nil, fmt.Errorf("%w: network %q", ErrInvalid, n)
	}
	if err := checkText("room URI", string(room), MaxNativeLen, false); err != nil {
		return nil, err
	}
	if err := checkMessageID("message ID", msgID); err != nil {
		return nil, err
	}
	return m.queryMessages(ctx, "look up message by MIMI ID", `SELECT `+messageCols+` FROM idmap_messages
		WHERE room_uri = ? AND message_id = ? AND network = ? ORDER BY is_primary DESC, created_at, native_id LIMIT ?`,
		string(room), msgID, string(n), MaxResults)
}

// Primary returns the native ID to use for a MIMI message on network n: the primary mapping, or
// the oldest one when none is marked primary.
func (m *Map) Primary(ctx context.Context, n event.Network, room event.RoomURI, msgID []byte) (Message, error) {
	all, err := m.ByMessageID(ctx, n, room, msgID)
	if err != nil {
		return Message{}, err
	}
	return all[0], nil
}

// ByEventID returns the mappings written for a bus envelope ID.
func (m *Map) ByEventID(ctx context.Context, id event.EventID) ([]Message, error) {
	if err := checkText("event ID", string(id), MaxNativeLen, false); err != nil {
		return nil, err
	}
	return m.queryMessages(ctx, "look up message by event ID", `SELECT `+messageCols+` FROM idmap_messages
		WHERE event_id = ? ORDER BY is_primary DESC, created_at LIMIT ?`, string(id), MaxResults)
}

// PruneMessages deletes message mappings stored before the given time and returns how many.
func (m *Map) PruneMessages(ctx context.Context, before time.Time) (int64, error) {
	res, err := m.q.ExecContext(ctx, `DELETE FROM idmap_messages WHERE created_at < ?`, before.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("idmap: prune messages: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("idmap: prune messages: rows affected: %w", err)
	}
	return n, nil
}

func (r *Reaction) validateKey() error {
	if err := checkText("room URI", string(r.Room), MaxNativeLen, false); err != nil {
		return err
	}
	if err := checkMessageID("target message ID", r.Target); err != nil {
		return err
	}
	return checkText("reactor", string(r.Reactor), MaxNativeLen, false)
}

// PutReaction records that Reactor reacted with Emoji on Target through the message MessageID.
// It returns inserted=false when the reaction is already recorded (whatever message added it).
func (m *Map) PutReaction(ctx context.Context, r Reaction) (inserted bool, err error) {
	if err := r.validateKey(); err != nil {
		return false, err
	}
	if err := checkText("emoji", r.Emoji, MaxEmojiLen, false); err != nil {
		return false, err
	}
	if err := checkMessageID("reaction message ID", r.MessageID); err != nil {
		return false, err
	}
	if err := checkText("event ID", string(r.EventID), MaxNativeLen, false); err != nil {
		return false, err
	}
	res, err := m.q.ExecContext(ctx, `INSERT INTO idmap_reactions
		(room_uri, target_id, reactor, emoji, message_id, event_id, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		string(r.Room), r.Target, string(r.Reactor), r.Emoji, r.MessageID, string(r.EventID), m.now().UnixMilli())
	if err != nil {
		return false, fmt.Errorf("idmap: put reaction: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("idmap: put reaction: rows affected: %w", err)
	}
	return n == 1, nil
}

const reactionCols = `room_uri, target_id, reactor, emoji, message_id, event_id, created_at`

func (m *Map) queryReactions(ctx context.Context, query string, args ...any) ([]Reaction, error) {
	rows, err := m.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("idmap: look up reactions: %w", err)
	}
	defer rows.Close()
	var out []Reaction
	for rows.Next() {
		var (
			r                 Reaction
			room, reactor, ev string
			created           int64
		)
		if err := rows.Scan(&room, &r.Target, &reactor, &r.Emoji, &r.MessageID, &ev, &created); err != nil {
			return nil, fmt.Errorf("idmap: look up reactions: %w", err)
		}
		r.Room, r.Reactor, r.EventID, r.CreatedAt = event.RoomURI(room), event.UserURI(reactor), event.EventID(ev), time.UnixMilli(created)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("idmap: look up reactions: %w", err)
	}
	return out, nil
}

// Reactions returns the reactions reactor currently has on target, in emoji order. No reactions is
// an empty result, not an error.
func (m *Map) Reactions(ctx context.Context, room event.RoomURI, target []byte, reactor event.UserURI) ([]Reaction, error) {
	k := Reaction{Room: room, Target: target, Reactor: reactor}
	if err := k.validateKey(); err != nil {
		return nil, err
	}
	return m.queryReactions(ctx, `SELECT `+reactionCols+` FROM idmap_reactions
		WHERE room_uri = ? AND target_id = ? AND reactor = ? ORDER BY emoji LIMIT ?`,
		string(room), target, string(reactor), MaxResults)
}

// ReactionsOn returns every user's reactions on target, by reactor and emoji.
func (m *Map) ReactionsOn(ctx context.Context, room event.RoomURI, target []byte) ([]Reaction, error) {
	if err := checkText("room URI", string(room), MaxNativeLen, false); err != nil {
		return nil, err
	}
	if err := checkMessageID("target message ID", target); err != nil {
		return nil, err
	}
	return m.queryReactions(ctx, `SELECT `+reactionCols+` FROM idmap_reactions
		WHERE room_uri = ? AND target_id = ? ORDER BY reactor, emoji LIMIT ?`, string(room), target, MaxResults)
}

// ReactionByMessageID returns the reaction that the message msgID added (to resolve an unreact
// that replaces it).
func (m *Map) ReactionByMessageID(ctx context.Context, room event.RoomURI, msgID []byte) (Reaction, error) {
	if err := checkText("room URI", string(room), MaxNativeLen, false); err != nil {
		return Reaction{}, err
	}
	if err := checkMessageID("message ID", msgID); err != nil {
		return Reaction{}, err
	}
	rs, err := m.queryReactions(ctx, `SELECT `+reactionCols+` FROM idmap_reactions
		WHERE room_uri = ? AND message_id = ? LIMIT 1`, string(room), msgID)
	if err != nil {
		return Reaction{}, err
	}
	if len(rs) == 0 {
		return Reaction{}, ErrNotFound
	}
	return rs[0], nil
}

// DeleteReaction removes one reaction and reports whether it existed.
func (m *Map) DeleteReaction(ctx context.Context, room event.RoomURI, target []byte, reactor event.UserURI, emoji string) (bool, error) {
	k := Reaction{Room: room, Target: target, Reactor: reactor}
	if err := k.validateKey(); err != nil {
		return false, err
	}
	if err := checkText("emoji", emoji, MaxEmojiLen, false); err != nil {
		return false, err
	}
	res, err := m.q.ExecContext(ctx, `DELETE FROM idmap_reactions
		WHERE room_uri = ? AND target_id = ? AND reactor = ? AND emoji = ?`, string(room), target, string(reactor), emoji)
	if err != nil {
		return false, fmt.Errorf("idmap: delete reaction: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("idmap: delete reaction: rows affected: %w", err)
	}
	return n == 1, nil
}

// Diff compares a user's current reactions with the wanted set (XEP-0444 sends the full set) and
// returns the emojis to add and the stored reactions to remove. Duplicates in want are ignored.
func Diff(current []Reaction, want []string) (add []string, remove []Reaction) {
	have := make(map[string]bool, len(current))
	for _, r := range current {
		have[r.Emoji] = true
	}
	wanted := make(map[string]bool, len(want))
	for _, e := range want {
		if wanted[e] {
			continue
		}
		wanted[e] = true
		if !have[e] {
			add = append(add, e)
		}
	}
	for _, r := range current {
		if !wanted[r.Emoji] {
			remove = append(remove, r)
		}
	}
	return add, remove
}

// Prune deletes the mappings and reaction records created before `before` (retention of ID
// mappings): an edit, reply or reaction to an older message then no longer finds its target. It
// returns how many rows it deleted.
func Prune(ctx context.Context, st *store.Store, before time.Time) (int64, error) {
	ms := before.UnixMilli()
	n, err := st.DeleteWhere(ctx, "idmap_messages", []string{"network", "native_room", "native_id", "native_sender"}, `created_at < ?`, ms)
	if err != nil {
		return n, fmt.Errorf("idmap: prune: %w", err)
	}
	m, err := st.DeleteWhere(ctx, "idmap_reactions", []string{"room_uri", "target_id", "reactor", "emoji"}, `created_at < ?`, ms)
	if err != nil {
		return n + m, fmt.Errorf("idmap: prune reactions: %w", err)
	}
	return n + m, nil
}

// EraseUser deletes the mappings of messages a user sent (by its native sender IDs on each
// network) and its reaction records (by its MIMI URI), and returns how many rows it deleted.
func EraseUser(ctx context.Context, st *store.Store, u event.UserURI, nativeSenders ...event.NativeUserID) (int64, error) {
	n, err := st.DeleteWhere(ctx, "idmap_reactions", []string{"room_uri", "target_id", "reactor", "emoji"}, `reactor = ?`, string(u))
	if err != nil {
		return n, fmt.Errorf("idmap: erase reactions: %w", err)
	}
	for _, s := range nativeSenders {
		m, err := st.DeleteWhere(ctx, "idmap_messages", []string{"network", "native_room", "native_id", "native_sender"}, `native_sender = ?`, string(s))
		n += m
		if err != nil {
			return n, fmt.Errorf("idmap: erase messages: %w", err)
		}
	}
	return n, nil
}
