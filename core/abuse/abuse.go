// Package abuse keeps the abuse reports a provider accepted as the hub of a room, for the
// organisation's admin (the admin console lists them):
//
//	err := abuse.Migrate(ctx, st)
//	id, err := abuse.Record(ctx, st, r)   // a report whose franks the hub verified
//	reports, err := abuse.List(ctx, st, 100)
//
// A report's note and the reported messages are sealed with the store key. Retention removes
// reports older than its maximum age (Prune); erasure removes the reports a user made or that
// name her (EraseUser).
package abuse

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

//go:embed migrations
var migrationFS embed.FS

// Component is the store component of this package.
const Component = "abuse"

var (
	sealedNote    = store.SealedColumn{Table: "abuse_reports", Column: "note", Key: []string{"id"}}
	sealedContent = store.SealedColumn{Table: "abuse_messages", Column: "content", Key: []string{"report_id", "idx"}}
)

// Schema is this package's store component, with its sealed columns.
var Schema = func() store.Migrations {
	m := store.MustMigrationsFromFS(Component, migrationFS, "migrations")
	m.Sealed = []store.SealedColumn{sealedNote, sealedContent, sealedEvidence}
	return m
}()

// Migrate creates or upgrades the tables.
func Migrate(ctx context.Context, st *store.Store) error {
	if err := st.Migrate(ctx, Schema); err != nil {
		return fmt.Errorf("abuse: migrate: %w", err)
	}
	return nil
}

// Message is one reported message: the decrypted MIMI content (which holds its salt, sender
// and room) and when the hub accepted it.
type Message struct {
	Sender   event.UserURI
	Accepted time.Time
	Content  []byte
}

// Text returns the message's text for an admin: its plain-text or markdown parts, else a
// description of what it holds. Undecodable content is described as such.
func (m Message) Text() string {
	msg, err := content.Decode(m.Content)
	if err != nil {
		return "(content that cannot be decoded: " + err.Error() + ")"
	}
	var parts []string
	var walk func(p content.NestedPart)
	walk = func(p content.NestedPart) {
		switch b := p.Body.(type) {
		case content.SinglePart:
			if strings.HasPrefix(b.ContentType, "text/plain") || strings.HasPrefix(b.ContentType, "text/markdown") {
				parts = append(parts, string(b.Content))
			} else {
				parts = append(parts, "("+b.ContentType+")")
			}
		case *content.SinglePart:
			walk(content.NestedPart{Body: *b})
		case content.ExternalPart:
			parts = append(parts, "(attachment "+b.ContentType+")")
		case *content.ExternalPart:
			walk(content.NestedPart{Body: *b})
		case content.MultiPart:
			for _, q := range b.Parts {
				walk(q)
			}
		case *content.MultiPart:
			walk(content.NestedPart{Body: *b})
		}
	}
	walk(msg.Body)
	if len(parts) == 0 {
		return "(no text)"
	}
	return strings.Join(parts, " / ")
}

// Report is an accepted abuse report.
type Report struct {
	// ID identifies the report (derived from From and the report's bytes).
	ID   string
	Room event.RoomURI
	// From is the provider that sent the report (ours for our own users' reports).
	From              event.Domain
	Reporter, Accused event.UserURI
	// Reason is the draft's AbuseType (only reserved(0) is defined).
	Reason   uint8
	Note     string
	Messages []Message
	Received time.Time
}

// Limits of a recorded report.
const (
	// MaxNote bounds a report's note (bytes).
	MaxNote = 4096
	// MaxMessages bounds the messages of one report.
	MaxMessages = 64
)

// ErrInvalid is a report that cannot be recorded.
var ErrInvalid = errors.New("abuse: invalid report")

// ReportID is the ID of a report body sent by from.
func ReportID(from event.Domain, body []byte) string {
	h := sha256.New()
	h.Write([]byte(from))
	h.Write([]byte{0})
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// Record stores r (a report with the same ID is stored once) and reports whether it is new.
func Record(ctx context.Context, st *store.Store, r Report) (bool, error) {
	switch {
	case r.ID == "" || r.Room == "" || r.Reporter == "" || r.Accused == "":
		return false, fmt.Errorf("%w: ID, room, reporter and accused user are required", ErrInvalid)
	case len(r.Note) > MaxNote || !utf8.ValidString(r.Note):
		return false, fmt.Errorf("%w: the note is longer than %d bytes or not UTF-8", ErrInvalid, MaxNote)
	case len(r.Messages) == 0 || len(r.Messages) > MaxMessages:
		return false, fmt.Errorf("%w: %d messages (1 to %d)", ErrInvalid, len(r.Messages), MaxMessages)
	}
	fresh := false
	err := st.InTx(ctx, func(tx *store.Tx) error {
		note, err := tx.Seal(sealedNote, []byte(r.Note), r.ID)
		if err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO abuse_reports (id, room, from_domain, reporter, accused, reason, note, received_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			r.ID, string(r.Room), string(r.From), string(r.Reporter), string(r.Accused), int(r.Reason), note, r.Received.UnixMilli())
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		fresh = true
		for i, m := range r.Messages {
			idx := strconv.Itoa(i)
			c, err := tx.Seal(sealedContent, m.Content, r.ID, idx)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO abuse_messages (report_id, idx, sender, accepted_at, content) VALUES (?, ?, ?, ?, ?)`,
				r.ID, i, string(m.Sender), m.Accepted.UnixMilli(), c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("abuse: record report: %w", err)
	}
	return fresh, nil
}

// List returns up to limit reports, newest first, with their notes and messages opened.
func List(ctx context.Context, st *store.Store, limit int) ([]Report, error) {
	rows, err := st.QueryContext(ctx, `SELECT id, room, from_domain, reporter, accused, reason, note, received_at FROM abuse_reports
		ORDER BY received_at DESC, id LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("abuse: list: %w", err)
	}
	var out []Report
	for rows.Next() {
		var r Report
		var room, from, rep, acc string
		var reason int
		var note []byte
		var at int64
		if err := rows.Scan(&r.ID, &room, &from, &rep, &acc, &reason, &note, &at); err != nil {
			rows.Close()
			return nil, fmt.Errorf("abuse: list: %w", err)
		}
		pt, err := st.Unseal(sealedNote, note, r.ID)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("abuse: list: note of %s: %w", r.ID, err)
		}
		r.Room, r.From, r.Reporter, r.Accused = event.RoomURI(room), event.Domain(from), event.UserURI(rep), event.UserURI(acc)
		r.Reason, r.Note, r.Received = uint8(reason), string(pt), time.UnixMilli(at).UTC()
		out = append(out, r)
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return nil, fmt.Errorf("abuse: list: %w", err)
	}
	for i := range out {
		if out[i].Messages, err = messages(ctx, st, out[i].ID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func messages(ctx context.Context, st *store.Store, id string) ([]Message, error) {
	rows, err := st.QueryContext(ctx, `SELECT idx, sender, accepted_at, content FROM abuse_messages WHERE report_id = ? ORDER BY idx`, id)
	if err != nil {
		return nil, fmt.Errorf("abuse: messages of %s: %w", id, err)
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		var idx int
		var sender string
		var at int64
		var c []byte
		if err := rows.Scan(&idx, &sender, &at, &c); err != nil {
			return nil, fmt.Errorf("abuse: messages of %s: %w", id, err)
		}
		pt, err := st.Unseal(sealedContent, c, id, strconv.Itoa(idx))
		if err != nil {
			return nil, fmt.Errorf("abuse: message %d of %s: %w", idx, id, err)
		}
		out = append(out, Message{Sender: event.UserURI(sender), Accepted: time.UnixMilli(at).UTC(), Content: pt})
	}
	return out, rows.Err()
}

// Prune deletes the reports received before `before` (retention) and returns how many.
func Prune(ctx context.Context, st *store.Store, before time.Time) (int64, error) {
	if _, err := st.DeleteWhere(ctx, "abuse_messages", []string{"report_id", "idx"},
		`report_id IN (SELECT id FROM abuse_reports WHERE received_at < ?)`, before.UnixMilli()); err != nil {
		return 0, fmt.Errorf("abuse: prune: %w", err)
	}
	n, err := st.DeleteWhere(ctx, "abuse_reports", []string{"id"}, `received_at < ?`, before.UnixMilli())
	if err != nil {
		return n, fmt.Errorf("abuse: prune: %w", err)
	}
	return n, nil
}

// EraseUser deletes the reports u made or that name u as the accused (erasure of a user) and
// returns how many.
func EraseUser(ctx context.Context, st *store.Store, u event.UserURI) (int64, error) {
	if _, err := st.DeleteWhere(ctx, "abuse_messages", []string{"report_id", "idx"},
		`report_id IN (SELECT id FROM abuse_reports WHERE reporter = ? OR accused = ?)`, string(u), string(u)); err != nil {
		return 0, fmt.Errorf("abuse: erase %s: %w", u, err)
	}
	n, err := st.DeleteWhere(ctx, "abuse_reports", []string{"id"}, `reporter = ? OR accused = ?`, string(u), string(u))
	if err != nil {
		return n, fmt.Errorf("abuse: erase %s: %w", u, err)
	}
	m, err := st.DeleteWhere(ctx, "abuse_evidence", []string{"room", "message_id"}, `sender = ?`, string(u))
	if err != nil {
		return n + m, fmt.Errorf("abuse: erase %s: %w", u, err)
	}
	return n + m, nil
}
