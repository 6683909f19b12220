package catchup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

const own = id.UserID("@gw:hs.example")

func msg(evt id.EventID) *mevent.Event {
	return &mevent.Event{ID: evt, Type: mevent.EventMessage, Sender: "@alice:hs.example"}
}

func member(evt id.EventID, u id.UserID, membership string) *mevent.Event {
	k := string(u)
	return &mevent.Event{ID: evt, Type: mevent.StateMember, StateKey: &k, Sender: u,
		Content: mevent.Content{Raw: map[string]any{"membership": membership}}}
}

func response(rooms map[id.RoomID][]*mevent.Event) *mautrix.RespSync {
	res := &mautrix.RespSync{}
	res.Rooms.Join = map[id.RoomID]*mautrix.SyncJoinedRoom{}
	for room, evs := range rooms {
		r := &mautrix.SyncJoinedRoom{}
		r.Timeline.Events = evs
		res.Rooms.Join[room] = r
	}
	return res
}

// TestResponse: each room's events are ingested in order, history up to the account's own join
// is cut, a failing event holds its room (not the others) until it succeeds, and one that keeps
// failing is given up after MaxAttempts, unless the bus is down.
func TestResponse(t *testing.T) {
	for _, c := range []struct {
		name  string
		rooms map[id.RoomID][]*mevent.Event
		fails map[id.EventID]int // failures before it succeeds (-1: always)
		down  bool
		// rounds is how often the same response is handled; want the events ingested by then,
		// in order per room, errs whether each round failed, gaveUp the events given up.
		rounds int
		want   map[id.RoomID][]id.EventID
		errs   []bool
		gaveUp []id.EventID
	}{
		{name: "in order", rooms: map[id.RoomID][]*mevent.Event{"!a": {msg("a1"), msg("a2"), msg("a3")}}, rounds: 1,
			want: map[id.RoomID][]id.EventID{"!a": {"a1", "a2", "a3"}}, errs: []bool{false}},
		{name: "history before the own join cut", rounds: 1,
			rooms: map[id.RoomID][]*mevent.Event{"!a": {msg("h1"), member("inv", own, "invite"), member("j", own, "join"), msg("a1")},
				"!b": {member("bj", "@bob:hs.example", "join"), msg("b1")}},
			want: map[id.RoomID][]id.EventID{"!a": {"a1"}, "!b": {"bj", "b1"}}, errs: []bool{false}},
		{name: "a failure holds its room only", rounds: 2,
			rooms: map[id.RoomID][]*mevent.Event{"!a": {msg("a1"), msg("a2"), msg("a3")}, "!b": {msg("b1")}},
			fails: map[id.EventID]int{"a2": 1},
			want:  map[id.RoomID][]id.EventID{"!a": {"a1", "a2", "a3"}, "!b": {"b1"}}, errs: []bool{true, false}},
		{name: "given up after MaxAttempts", rounds: 3,
			rooms: map[id.RoomID][]*mevent.Event{"!a": {msg("a1"), msg("a2"), msg("a3")}},
			fails: map[id.EventID]int{"a2": -1},
			want:  map[id.RoomID][]id.EventID{"!a": {"a1", "a3"}}, errs: []bool{true, true, false}, gaveUp: []id.EventID{"a2"}},
		{name: "not given up while the bus is down", rounds: 5, down: true,
			rooms: map[id.RoomID][]*mevent.Event{"!a": {msg("a1"), msg("a2"), msg("a3")}},
			fails: map[id.EventID]int{"a2": -1},
			want:  map[id.RoomID][]id.EventID{"!a": {"a1"}}, errs: []bool{true, true, true, true, true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			done := map[id.EventID]bool{}
			got := map[id.RoomID][]id.EventID{}
			failed := map[id.EventID]int{}
			var gaveUp []id.EventID
			cu := New(Config{Own: own, MaxEvents: 10, MaxAttempts: 3, Log: slog.New(slog.DiscardHandler),
				Processed: func(_ context.Context, evt id.EventID) (bool, error) { return done[evt], nil },
				Ingest: func(_ context.Context, evt *mevent.Event) error {
					if done[evt.ID] {
						return nil // the dedupe
					}
					if n, ok := c.fails[evt.ID]; ok && (n < 0 || failed[evt.ID] < n) {
						failed[evt.ID]++
						return fmt.Errorf("failure %d of %s", failed[evt.ID], evt.ID)
					}
					done[evt.ID] = true
					got[evt.RoomID] = append(got[evt.RoomID], evt.ID)
					return nil
				},
				Unreachable: func(error) bool { return false },
				Down:        func(context.Context) bool { return c.down },
				GiveUp: func(_ context.Context, evt *mevent.Event, attempts int, err error) error {
					if attempts != 3 || !strings.Contains(err.Error(), string(evt.ID)) {
						t.Errorf("GiveUp(%s, %d, %v)", evt.ID, attempts, err)
					}
					gaveUp = append(gaveUp, evt.ID)
					done[evt.ID] = true
					return nil
				}})
			res := response(c.rooms)
			var errs []bool
			for range c.rounds {
				err := cu.Response(t.Context(), res, "s1")
				errs = append(errs, err != nil)
			}
			if !slices.Equal(errs, c.errs) {
				t.Errorf("rounds failed: %v, want %v", errs, c.errs)
			}
			for room, want := range c.want {
				if !slices.Equal(got[room], want) {
					t.Errorf("%s: ingested %v, want %v", room, got[room], want)
				}
			}
			if !slices.Equal(gaveUp, c.gaveUp) {
				t.Errorf("given up: %v, want %v", gaveUp, c.gaveUp)
			}
		})
	}
}

// TestFirstSyncSkipped: the first sync (no since token) hands nothing on.
func TestFirstSyncSkipped(t *testing.T) {
	cu := New(Config{Own: own, Ingest: func(context.Context, *mevent.Event) error { return errors.New("ingested") }})
	if err := cu.Response(t.Context(), response(map[id.RoomID][]*mevent.Event{"!a": {msg("a1")}}), ""); err != nil {
		t.Errorf("first sync: %v", err)
	}
}
