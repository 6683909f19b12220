package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/bridges/idmap"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp"
	"github.com/mimi-gateway/mimi-gateway/config"
	"github.com/mimi-gateway/mimi-gateway/core/abuse"
	"github.com/mimi-gateway/mimi-gateway/core/assets"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/consent"
	"github.com/mimi-gateway/mimi-gateway/core/console"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/provider"
	"github.com/mimi-gateway/mimi-gateway/core/retention"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// TestRetentionPerCategory: with the sweeper's clock just before a record's age reaches its
// category's maximum age nothing is removed; just after, the record is removed and counted. One
// subtest per category of the retention section, on SQLite and PostgreSQL, with the default
// maximum ages.
func TestRetentionPerCategory(t *testing.T) {
	defaults, err := config.Load(config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := defaults.Retention
	storetest.EachConfig(t, func(t *testing.T, scfg store.Config) {
		ctx := t.Context()
		st := storetest.Open(t, scfg, store.WithMigrations(idmap.Schema, protocol.Schema, provider.Schema, xmpp.Schema, console.Schema, consent.Schema, abuse.Schema))
		t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
		ms := t0.UnixMilli()
		exec := func(q string, args ...any) {
			t.Helper()
			if _, err := st.ExecContext(ctx, q, args...); err != nil {
				t.Fatal(err)
			}
		}
		count := func(q string) int {
			t.Helper()
			var n int
			if err := st.QueryRowContext(ctx, q).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		room := "mimi://klinik-a.example/r/ward-3"
		cats := []struct {
			name   string
			maxAge time.Duration
			add    func(t *testing.T) // writes one record at t0
			left   func(t *testing.T) int
		}{
			{"id_mappings", r.IDMappings, func(t *testing.T) {
				exec(`INSERT INTO idmap_messages (network, native_room, native_id, native_sender, room_uri, message_id, event_id, is_primary, created_at) VALUES ('matrix', '!r:a', '$e', '@a:a', ?, ?, 'ev1', 1, ?)`, room, []byte{1}, ms)
				exec(`INSERT INTO idmap_reactions (room_uri, target_id, reactor, emoji, message_id, event_id, created_at) VALUES (?, ?, 'mimi://a/u/a', '+1', ?, 'ev2', ?)`, room, []byte{1}, []byte{2}, ms)
				exec(`INSERT INTO provider_msgmap (event_id, room, message_id, message, submitted, created_at) VALUES ('ev3', ?, ?, ?, 1, ?)`, room, []byte{3}, []byte{4}, ms)
			}, func(*testing.T) int {
				return count(`SELECT (SELECT COUNT(*) FROM idmap_messages) + (SELECT COUNT(*) FROM idmap_reactions) + (SELECT COUNT(*) FROM provider_msgmap)`)
			}},
			{"dedupe_marks", r.DedupeMarks, func(t *testing.T) {
				exec(`INSERT INTO store_processed_events (scope, event_id, processed_at) VALUES ('matrix.txn', 'txn-1', ?)`, ms)
			}, func(*testing.T) int { return count(`SELECT COUNT(*) FROM store_processed_events`) }},
			{"muc_history", r.MUCHistory, func(t *testing.T) {
				exec(`INSERT INTO xmpp_rooms (room_uri, muc_local, kind, created_at) VALUES (?, 'ward-3', 'muc', ?)`, room, ms)
				exec(`INSERT INTO xmpp_history (room_uri, stanza_id, nick, payload, sent_at) VALUES (?, 's1', 'alice', ?, ?)`, room, []byte("sealed"), ms)
			}, func(*testing.T) int { return count(`SELECT COUNT(*) FROM xmpp_history`) }},
			{"audit_log", r.AuditLog, func(t *testing.T) {
				exec(`INSERT INTO console_audit (at, actor, action) VALUES (?, 'admin', 'login')`, ms)
			}, func(*testing.T) int { return count(`SELECT COUNT(*) FROM console_audit`) }},
			{"abuse_reports", r.AbuseReports, func(t *testing.T) {
				if _, err := abuse.Record(ctx, st, abuse.Report{ID: "r1", Room: event.RoomURI(room), From: "amt-b.example",
					Reporter: "mimi://amt-b.example/u/berta", Accused: "mimi://e.example/u/eve", Received: t0,
					Messages: []abuse.Message{{Sender: "mimi://e.example/u/eve", Accepted: t0, Content: []byte("sealed")}}}); err != nil {
					t.Fatal(err)
				}
			}, func(*testing.T) int {
				return count(`SELECT (SELECT COUNT(*) FROM abuse_reports) + (SELECT COUNT(*) FROM abuse_messages)`)
			}},
			{"consent_records", r.ConsentRecords, func(t *testing.T) {
				exec(`INSERT INTO consent_requests (requester, target, room, state, created_at, updated_at) VALUES ('mimi://amt-b.example/u/berta', 'mimi://klinik-a.example/u/alice', '', 'denied', ?, ?)`, ms, ms)
				exec(`INSERT INTO consent_grants (target, requester, granted_at) VALUES ('mimi://klinik-a.example/u/alice', 'mimi://amt-b.example/u/bob', ?)`, ms)
			}, func(t *testing.T) int {
				if n := count(`SELECT COUNT(*) FROM consent_grants`); n != 1 {
					t.Fatalf("%d grants in force left, want 1: a grant in force is not a record", n)
				}
				return count(`SELECT COUNT(*) FROM consent_requests`)
			}},
		}
		var now atomic.Int64
		clock := func() time.Time { return time.UnixMilli(now.Load()) }
		as, err := assets.New(filepath.Join(t.TempDir(), "assets"), "klinik-a.example", 0, assets.WithClock(clock), assets.WithExpiry(365*24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		cats = append(cats, struct {
			name   string
			maxAge time.Duration
			add    func(t *testing.T)
			left   func(t *testing.T) int
		}{"assets", r.Assets, func(t *testing.T) {
			now.Store(ms)
			if _, err := as.Put(ctx, bytes.NewReader([]byte("x-ray")), assets.Meta{ContentType: "image/png", Owner: "mimi://klinik-a.example/u/alice"}); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T) int {
			n, _, err := as.CountOwner(ctx, "mimi://klinik-a.example/u/alice")
			if err != nil {
				t.Fatal(err)
			}
			return int(n)
		}})
		for _, c := range cats {
			t.Run(c.name, func(t *testing.T) {
				if c.maxAge <= 0 {
					t.Fatalf("default max age of %s is %v", c.name, c.maxAge)
				}
				sw, err := newSweeper(defaults, st, nil, as, retention.WithClock(clock))
				if err != nil {
					t.Fatal(err)
				}
				c.add(t)
				now.Store(t0.Add(c.maxAge - time.Second).UnixMilli())
				got, err := sw.SweepOnce(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if n := c.left(t); n == 0 || got[c.name] != 0 {
					t.Fatalf("a second before its age: %d records left, %d removed; want none removed", n, got[c.name])
				}
				now.Store(t0.Add(c.maxAge + time.Second).UnixMilli())
				got, err = sw.SweepOnce(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if n := c.left(t); n != 0 || got[c.name] == 0 {
					t.Fatalf("a second after its age: %d records left, %d removed", n, got[c.name])
				}
			})
		}
	})
}

// TestRetentionDeadLetters: dead letters carry the server's time, so the sweeper's clock is set
// relative to when the dead letter was stored.
func TestRetentionDeadLetters(t *testing.T) {
	defaults, err := config.Load(config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	dir := t.TempDir()
	b, err := bus.Open(ctx, bus.Config{Embedded: bus.EmbeddedConfig{StoreDir: filepath.Join(dir, "nats")}, Partitions: 1,
		MaxDeliveries: 1, Backoff: []time.Duration{time.Millisecond}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	st := storetest.Open(t, storetest.SQLiteConfig(t))
	sub, err := b.ConsumeOut(ctx, "endpoint", func(context.Context, bus.Delivery) error {
		return bus.Permanent(errors.New("no such room"))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop(context.Background())
	before := time.Now()
	room := event.NewRoomURI("klinik-a.example", "r1")
	env := &event.Envelope{ID: event.NewEventID(event.NetworkMatrix, "!r", "$1"), Kind: event.KindMessage, Room: room,
		Sender: "mimi://klinik-a.example/u/alice", Content: []byte("hello"),
		Origin: event.Origin{Network: event.NetworkMatrix, Room: "!r", Event: "$1"}, Timestamp: before}
	if err := b.PublishOut(ctx, env); err != nil {
		t.Fatal(err)
	}
	checkFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		if n, err := b.DeadLetterCount(ctx); err != nil || n != 1 {
			return errors.New("no dead letter yet")
		}
		return nil
	})
	after := time.Now()
	var now atomic.Int64
	sw, err := newSweeper(defaults, st, b, nil, retention.WithClock(func() time.Time { return time.UnixMilli(now.Load()) }))
	if err != nil {
		t.Fatal(err)
	}
	maxAge := defaults.Retention.DeadLetters
	now.Store(before.Add(maxAge - time.Second).UnixMilli())
	if got, err := sw.SweepOnce(ctx); err != nil || got["dead_letters"] != 0 {
		t.Fatalf("before its age: removed %d, %v", got["dead_letters"], err)
	}
	if n, _ := b.DeadLetterCount(ctx); n != 1 {
		t.Fatalf("%d dead letters left before their age, want 1", n)
	}
	now.Store(after.Add(maxAge + time.Second).UnixMilli())
	if got, err := sw.SweepOnce(ctx); err != nil || got["dead_letters"] != 1 {
		t.Fatalf("after its age: removed %d, %v", got["dead_letters"], err)
	}
	if n, _ := b.DeadLetterCount(ctx); n != 0 {
		t.Fatalf("%d dead letters left after their age", n)
	}
}
