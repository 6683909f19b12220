package idmap_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/bridges/idmap"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

const room = event.RoomURI("mimi://hub.example/r/ward7")

func mid(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func each(t *testing.T, fn func(t *testing.T, s *store.Store, m *idmap.Map)) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		if err := s.Migrate(t.Context(), idmap.Schema); err != nil {
			t.Fatalf("migrate: %v", err)
		}
		clock := time.UnixMilli(1_700_000_000_000)
		m := idmap.New(s).WithClock(func() time.Time { clock = clock.Add(time.Millisecond); return clock })
		fn(t, s, m)
	})
}

func msg(id, sender string, m byte, primary bool) idmap.Message {
	return idmap.Message{
		Network: event.NetworkXMPP, NativeRoom: "ward7@rooms.example", NativeID: event.NativeEventID(id),
		NativeSender: event.NativeUserID(sender), Room: room, MessageID: mid(m),
		EventID: event.NewEventID(event.NetworkXMPP, "ward7@rooms.example", event.NativeEventID(id)), Primary: primary,
	}
}

func TestPutAndLookups(t *testing.T) {
	each(t, func(t *testing.T, s *store.Store, m *idmap.Map) {
		ctx := t.Context()
		// Alice's message 1 has two native IDs: her origin-id and the room's stanza-id (primary).
		for _, x := range []idmap.Message{msg("o-1", "alice@a.example", 1, false), msg("s-1", "", 1, true)} {
			ins, err := m.Put(ctx, x)
			if err != nil || !ins {
				t.Fatalf("Put(%s) = %v, %v; want inserted", x.NativeID, ins, err)
			}
		}
		// Redelivery of the same mapping: no error, not inserted.
		if ins, err := m.Put(ctx, msg("o-1", "alice@a.example", 1, false)); err != nil || ins {
			t.Fatalf("Put again = %v, %v; want false, nil", ins, err)
		}
		// Same native ID from the same sender, different MIMI message: refused.
		if _, err := m.Put(ctx, msg("o-1", "alice@a.example", 2, false)); !errors.Is(err, idmap.ErrConflict) {
			t.Fatalf("remap: err = %v, want ErrConflict", err)
		}
		// Mallory reuses Alice's stanza ID: stored separately, never confused with Alice's.
		if _, err := m.Put(ctx, msg("o-1", "mallory@a.example", 3, false)); err != nil {
			t.Fatal(err)
		}

		got, err := m.Native(ctx, event.NetworkXMPP, "ward7@rooms.example", "o-1", "alice@a.example")
		if err != nil || !bytes.Equal(got.MessageID, mid(1)) || got.Room != room || got.Primary {
			t.Fatalf("Native(alice) = %+v, %v", got, err)
		}
		if got.CreatedAt.IsZero() || got.EventID == "" {
			t.Fatalf("Native: missing timestamp or event ID: %+v", got)
		}
		got, err = m.Native(ctx, event.NetworkXMPP, "ward7@rooms.example", "o-1", "mallory@a.example")
		if err != nil || !bytes.Equal(got.MessageID, mid(3)) {
			t.Fatalf("Native(mallory) = %+v, %v", got, err)
		}
		// Edits must come from the original sender: Carol finds nothing.
		if _, err := m.Native(ctx, event.NetworkXMPP, "ward7@rooms.example", "o-1", "carol@a.example"); !errors.Is(err, idmap.ErrNotFound) {
			t.Fatalf("Native(carol) err = %v, want ErrNotFound", err)
		}
		// Other networks and rooms are separate scopes.
		if _, err := m.Native(ctx, event.NetworkMatrix, "ward7@rooms.example", "o-1", "alice@a.example"); !errors.Is(err, idmap.ErrNotFound) {
			t.Fatalf("Native(matrix) err = %v, want ErrNotFound", err)
		}
		if _, err := m.Native(ctx, event.NetworkXMPP, "other@rooms.example", "o-1", "alice@a.example"); !errors.Is(err, idmap.ErrNotFound) {
			t.Fatalf("Native(other room) err = %v, want ErrNotFound", err)
		}

		anyS, err := m.NativeAny(ctx, event.NetworkXMPP, "ward7@rooms.example", "o-1")
		if err != nil || len(anyS) != 2 || anyS[0].NativeSender != "alice@a.example" || anyS[1].NativeSender != "mallory@a.example" {
			t.Fatalf("NativeAny = %+v, %v; want alice then mallory", anyS, err)
		}

		byID, err := m.ByMessageID(ctx, event.NetworkXMPP, room, mid(1))
		if err != nil || len(byID) != 2 || byID[0].NativeID != "s-1" || !byID[0].Primary || byID[1].NativeID != "o-1" {
			t.Fatalf("ByMessageID = %+v, %v; want s-1 (primary) then o-1", byID, err)
		}
		p, err := m.Primary(ctx, event.NetworkXMPP, room, mid(1))
		if err != nil || p.NativeID != "s-1" {
			t.Fatalf("Primary = %+v, %v", p, err)
		}
		if _, err := m.ByMessageID(ctx, event.NetworkMatrix, room, mid(1)); !errors.Is(err, idmap.ErrNotFound) {
			t.Fatalf("ByMessageID(matrix) err = %v", err)
		}
		evs, err := m.ByEventID(ctx, byID[1].EventID)
		if err != nil || len(evs) != 2 { // alice's and mallory's o-1 share the event ID scheme (room+id)
			t.Fatalf("ByEventID = %+v, %v", evs, err)
		}

		// Works inside a transaction too, and rolls back with it.
		rollback := errors.New("roll back")
		err = s.InTx(ctx, func(tx *store.Tx) error {
			if _, err := idmap.New(tx).Put(ctx, msg("tx-1", "alice@a.example", 9, true)); err != nil {
				return err
			}
			if _, err := idmap.New(tx).Native(ctx, event.NetworkXMPP, "ward7@rooms.example", "tx-1", "alice@a.example"); err != nil {
				return err
			}
			return rollback
		})
		if !errors.Is(err, rollback) {
			t.Fatalf("InTx = %v", err)
		}
		if _, err := m.Native(ctx, event.NetworkXMPP, "ward7@rooms.example", "tx-1", "alice@a.example"); !errors.Is(err, idmap.ErrNotFound) {
			t.Fatalf("rolled-back mapping visible: %v", err)
		}

		n, err := m.PruneMessages(ctx, time.UnixMilli(1_700_000_000_000+3))
		if err != nil || n != 2 {
			t.Fatalf("PruneMessages = %d, %v; want 2 (the first two rows)", n, err)
		}
	})
}

func TestInvalidInput(t *testing.T) {
	each(t, func(t *testing.T, s *store.Store, m *idmap.Map) {
		ctx := t.Context()
		long := strings.Repeat("x", idmap.MaxNativeLen+1)
		bad := []struct {
			name string
			mut  func(*idmap.Message)
		}{
			{"bad network", func(x *idmap.Message) { x.Network = "Bad.Net" }},
			{"empty room", func(x *idmap.Message) { x.NativeRoom = "" }},
			{"empty id", func(x *idmap.Message) { x.NativeID = "" }},
			{"long id", func(x *idmap.Message) { x.NativeID = event.NativeEventID(long) }},
			{"NUL in sender", func(x *idmap.Message) { x.NativeSender = "a\x00b" }},
			{"invalid UTF-8 room", func(x *idmap.Message) { x.NativeRoom = "\xff" }},
			{"empty message ID", func(x *idmap.Message) { x.MessageID = nil }},
			{"long message ID", func(x *idmap.Message) { x.MessageID = make([]byte, idmap.MaxMessageIDLen+1) }},
			{"empty event ID", func(x *idmap.Message) { x.EventID = "" }},
			{"empty room URI", func(x *idmap.Message) { x.Room = "" }},
		}
		for _, tc := range bad {
			x := msg("id", "alice@a.example", 1, false)
			tc.mut(&x)
			if _, err := m.Put(ctx, x); !errors.Is(err, idmap.ErrInvalid) {
				t.Errorf("%s: Put err = %v, want ErrInvalid", tc.name, err)
			}
		}
		if _, err := m.Native(ctx, event.NetworkXMPP, "r", event.NativeEventID(long), ""); !errors.Is(err, idmap.ErrInvalid) {
			t.Errorf("Native(long) err = %v", err)
		}
		if _, err := m.PutReaction(ctx, idmap.Reaction{Room: room, Target: mid(1), Reactor: "mimi://a.example/u/alice",
			Emoji: strings.Repeat("👍", 100), MessageID: mid(2), EventID: "e"}); !errors.Is(err, idmap.ErrInvalid) {
			t.Errorf("PutReaction(long emoji) err = %v", err)
		}
	})
}

func TestReactions(t *testing.T) {
	each(t, func(t *testing.T, s *store.Store, m *idmap.Map) {
		ctx := t.Context()
		alice := event.UserURI("mimi://a.example/u/alice")
		bob := event.UserURI("mimi://b.example/u/bob")
		put := func(who event.UserURI, emoji string, id byte) {
			t.Helper()
			ins, err := m.PutReaction(ctx, idmap.Reaction{Room: room, Target: mid(1), Reactor: who, Emoji: emoji, MessageID: mid(id), EventID: event.EventID("ev-" + emoji)})
			if err != nil || !ins {
				t.Fatalf("PutReaction(%s) = %v, %v", emoji, ins, err)
			}
		}
		put(alice, "👍", 10)
		put(alice, "❤️", 11)
		put(bob, "👍", 12)
		if ins, err := m.PutReaction(ctx, idmap.Reaction{Room: room, Target: mid(1), Reactor: alice, Emoji: "👍", MessageID: mid(13), EventID: "x"}); err != nil || ins {
			t.Fatalf("duplicate PutReaction = %v, %v; want false, nil", ins, err)
		}
		cur, err := m.Reactions(ctx, room, mid(1), alice)
		if err != nil || len(cur) != 2 {
			t.Fatalf("Reactions(alice) = %+v, %v", cur, err)
		}
		all, err := m.ReactionsOn(ctx, room, mid(1))
		if err != nil || len(all) != 3 {
			t.Fatalf("ReactionsOn = %+v, %v", all, err)
		}
		// XEP-0444: Alice now has {👍, 🎉}: add 🎉, remove ❤️.
		add, remove := idmap.Diff(cur, []string{"👍", "🎉", "🎉"})
		if len(add) != 1 || add[0] != "🎉" || len(remove) != 1 || remove[0].Emoji != "❤️" || !bytes.Equal(remove[0].MessageID, mid(11)) {
			t.Fatalf("Diff = %v, %+v", add, remove)
		}
		r, err := m.ReactionByMessageID(ctx, room, mid(11))
		if err != nil || r.Emoji != "❤️" || r.Reactor != alice {
			t.Fatalf("ReactionByMessageID = %+v, %v", r, err)
		}
		if _, err := m.ReactionByMessageID(ctx, room, mid(99)); !errors.Is(err, idmap.ErrNotFound) {
			t.Fatalf("ReactionByMessageID(unknown) err = %v", err)
		}
		if ok, err := m.DeleteReaction(ctx, room, mid(1), alice, "❤️"); err != nil || !ok {
			t.Fatalf("DeleteReaction = %v, %v", ok, err)
		}
		if ok, err := m.DeleteReaction(ctx, room, mid(1), alice, "❤️"); err != nil || ok {
			t.Fatalf("DeleteReaction again = %v, %v", ok, err)
		}
		cur, err = m.Reactions(ctx, room, mid(1), alice)
		if err != nil || len(cur) != 1 || cur[0].Emoji != "👍" {
			t.Fatalf("Reactions after delete = %+v, %v", cur, err)
		}
		none, err := m.Reactions(ctx, room, mid(2), alice)
		if err != nil || len(none) != 0 {
			t.Fatalf("Reactions(no reactions) = %+v, %v", none, err)
		}
	})
}

func TestDiff(t *testing.T) {
	r := func(e string) idmap.Reaction { return idmap.Reaction{Emoji: e} }
	tests := []struct {
		name        string
		cur         []idmap.Reaction
		want        []string
		add, remove []string
	}{
		{"empty", nil, nil, nil, nil},
		{"add all", nil, []string{"a", "b"}, []string{"a", "b"}, nil},
		{"remove all", []idmap.Reaction{r("a")}, nil, nil, []string{"a"}},
		{"same", []idmap.Reaction{r("a")}, []string{"a"}, nil, nil},
		{"swap", []idmap.Reaction{r("a")}, []string{"b"}, []string{"b"}, []string{"a"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			add, remove := idmap.Diff(tc.cur, tc.want)
			var rm []string
			for _, x := range remove {
				rm = append(rm, x.Emoji)
			}
			if strings.Join(add, ",") != strings.Join(tc.add, ",") || strings.Join(rm, ",") != strings.Join(tc.remove, ",") {
				t.Fatalf("Diff = %v, %v; want %v, %v", add, rm, tc.add, tc.remove)
			}
		})
	}
}
