package portals_test

import (
	"slices"
	"testing"

	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges/idmap"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/portals"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// TestPortalTable: the portal pairs on both store backends (the 0001 migration of each dialect):
// each side finds the other, an unknown room is no portal, the first pair of a MIMI room or of a
// Matrix room stays, and Rooms lists every portal once.
func TestPortalTable(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		if err := s.Migrate(ctx, matrix.Schema, idmap.Schema); err != nil {
			t.Fatal(err)
		}
		p := portals.Table{Q: s}
		for _, put := range []struct {
			room event.RoomURI
			mx   id.RoomID
		}{
			{"mimi://a.example/r/one", "!one:hs"},
			{"mimi://a.example/r/two", "!two:hs"},
			{"mimi://a.example/r/one", "!other:hs"}, // the MIMI room has its portal already
			{"mimi://a.example/r/three", "!one:hs"}, // the Matrix room is a portal already
		} {
			if err := p.Put(ctx, put.room, put.mx, false); err != nil {
				t.Fatalf("put %s %s: %v", put.room, put.mx, err)
			}
		}
		for _, tc := range []struct {
			room event.RoomURI
			mx   id.RoomID
			ok   bool
		}{
			{"mimi://a.example/r/one", "!one:hs", true},
			{"mimi://a.example/r/two", "!two:hs", true},
			{"mimi://a.example/r/three", "", false},
		} {
			if mx, ok, err := p.ByMIMI(ctx, tc.room); err != nil || mx != tc.mx || ok != tc.ok {
				t.Errorf("ByMIMI(%s) = %s, %v, %v; want %s, %v", tc.room, mx, ok, err, tc.mx, tc.ok)
			}
			if !tc.ok {
				continue
			}
			if room, ok, err := p.ByMatrix(ctx, tc.mx); err != nil || room != tc.room || !ok {
				t.Errorf("ByMatrix(%s) = %s, %v, %v; want %s", tc.mx, room, ok, err, tc.room)
			}
		}
		if room, ok, err := p.ByMatrix(ctx, "!other:hs"); err != nil || ok || room != "" {
			t.Errorf("ByMatrix of no portal = %s, %v, %v", room, ok, err)
		}
		rooms, err := p.Rooms(ctx)
		slices.Sort(rooms)
		if err != nil || !slices.Equal(rooms, []id.RoomID{"!one:hs", "!two:hs"}) {
			t.Errorf("Rooms = %v (%v)", rooms, err)
		}
	})
}

// TestPowerLevelStore: the recorded power levels on both store backends (the 0002 migration of
// each dialect) take precedence over unsigned.prev_content and are replaced by the next record.
func TestPowerLevelStore(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		if err := s.Migrate(ctx, matrix.Schema, idmap.Schema); err != nil {
			t.Fatal(err)
		}
		p := portals.Table{Q: s}
		evt := &mevent.Event{RoomID: "!r:hs", Unsigned: mevent.Unsigned{PrevContent: &mevent.Content{VeryRaw: []byte(`{"users":{"@a:hs":50}}`)}}}
		if pl, err := p.PrevPowerLevels(ctx, evt); err != nil || pl == nil || pl.Users["@a:hs"] != 50 {
			t.Fatalf("without a record: %+v (%v)", pl, err)
		}
		for _, level := range []int{100, 75} {
			if err := p.PutPowerLevels(ctx, "!r:hs", &mevent.PowerLevelsEventContent{Users: map[id.UserID]int{"@a:hs": level}}); err != nil {
				t.Fatal(err)
			}
			if pl, err := p.PrevPowerLevels(ctx, evt); err != nil || pl == nil || pl.Users["@a:hs"] != level {
				t.Fatalf("recorded %d: %+v (%v)", level, pl, err)
			}
		}
	})
}
