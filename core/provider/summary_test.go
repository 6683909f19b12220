package provider

import (
	"context"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/room"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// TestSummaries reads rooms, members by provider, KeyPackage stock and the outbox backlog
// from the store on both backends.
func TestSummaries(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		if err := st.Migrate(ctx, Schema, protocol.Schema); err != nil {
			t.Fatal(err)
		}
		now := time.Unix(1_800_000_000, 0)
		hosted := event.NewRoomURI("a.example", "r1")
		followed := event.NewRoomURI("b.example", "r2")
		alice, bob, carol := event.NewUserURI("a.example", "alice"), event.NewUserURI("b.example", "bob"), event.NewUserURI("b.example", "carol")
		exec := func(q string, args ...any) {
			t.Helper()
			if _, err := st.ExecContext(ctx, q, args...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		exec(`INSERT INTO provider_rooms (room, hub, epoch, created_at) VALUES (?, ?, ?, ?), (?, ?, ?, ?)`,
			string(hosted), "a.example", 4, now.UnixMilli(), string(followed), "b.example", 9, now.UnixMilli())
		exec(`INSERT INTO provider_participants (room, user_uri, role) VALUES (?, ?, ?), (?, ?, ?), (?, ?, ?), (?, ?, ?)`,
			string(hosted), string(alice), int64(room.RoleOwner), string(hosted), string(bob), int64(room.RoleRegular),
			string(hosted), string(carol), int64(room.RoleBanned), string(followed), string(alice), int64(room.RoleRegular))
		exec(`INSERT INTO provider_clients (room, user_uri, epoch, version, state) VALUES (?, ?, 4, 1, ?)`, string(hosted), string(alice), []byte{1})
		exec(`INSERT INTO provider_users (user_uri, network, suite, sig_private, sig_public, created_at) VALUES (?, 'matrix', 1, ?, ?, 0)`,
			string(alice), []byte{1}, []byte{2})
		kp := `INSERT INTO provider_keypackages (ref, user_uri, key_package, init_private, enc_private, last_resort, expires_at, claimed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
		later, earlier := now.Add(time.Hour).UnixMilli(), now.Add(-time.Hour).UnixMilli()
		for i, row := range []struct{ lastResort, expires, claimed int64 }{{0, later, 0}, {0, later, 0}, {0, later, 5}, {0, earlier, 0}, {1, later, 0}} {
			exec(kp, string(rune('a'+i)), string(alice), []byte{1}, []byte{1}, []byte{1}, row.lastResort, row.expires, row.claimed)
		}
		for i := range 3 {
			exec(`INSERT INTO protocol_outbox (follower, room, body, created_at, attempts, next_attempt_at, last_status) VALUES (?, ?, ?, ?, ?, ?, ?)`,
				"b.example", string(hosted), []byte{1}, now.UnixMilli()+int64(i), 2-min(i, 1)*2, now.UnixMilli(), 503)
		}

		rooms, err := ListRooms(ctx, st, "a.example")
		if err != nil {
			t.Fatal(err)
		}
		if len(rooms) != 2 {
			t.Fatalf("rooms %+v", rooms)
		}
		h, f := rooms[0], rooms[1]
		if h.Room != hosted || !h.Hosted || h.Epoch != 4 || h.Members["a.example"] != 1 || h.Members["b.example"] != 1 || h.Banned != 1 || h.LocalClients != 1 {
			t.Errorf("hosted room %+v", h)
		}
		if f.Room != followed || f.Hosted || f.Hub != "b.example" || f.Epoch != 9 || f.Members["a.example"] != 1 {
			t.Errorf("followed room %+v", f)
		}
		stock, err := ListKeyPackageStock(ctx, st, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(stock) != 1 || stock[0].User != alice || stock[0].Available != 2 || stock[0].Claimed != 1 || stock[0].Expired != 1 || !stock[0].LastResort {
			t.Errorf("stock %+v", stock)
		}
		bl, err := protocol.ListBacklog(ctx, st)
		if err != nil {
			t.Fatal(err)
		}
		if len(bl) != 1 || bl[0].Pending != 3 || bl[0].Attempts != 2 || bl[0].LastStatus != 503 || bl[0].Follower != "b.example" || !bl[0].Oldest.Equal(now.UTC()) {
			t.Errorf("backlog %+v", bl)
		}
	})
}
