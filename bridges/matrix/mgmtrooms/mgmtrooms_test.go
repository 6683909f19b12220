package mgmtrooms_test

import (
	"context"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges/idmap"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/dendritetest"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/mgmtrooms"
	"github.com/mimi-gateway/mimi-gateway/bridges/servertest"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// TestRoomsStore: the records on both store backends: a room is nobody's management room until
// it is put, then it names its user both ways (For finds it without creating one), and a second
// user's room is kept apart.
func TestRoomsStore(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		if err := s.Migrate(ctx, matrix.Schema, idmap.Schema); err != nil {
			t.Fatal(err)
		}
		m := mgmtrooms.Rooms{Store: s, Scope: "matrix"}
		noCreate := func(context.Context, *mautrix.ReqCreateRoom, bool) (*mautrix.RespCreateRoom, error) {
			t.Fatal("a room was created for a user who has one")
			return nil, nil
		}
		if u, ok, err := m.UserOf(ctx, "!a:hs"); err != nil || ok || u != "" {
			t.Fatalf("before put: %s, %v, %v", u, ok, err)
		}
		for _, put := range []struct {
			room id.RoomID
			user id.UserID
		}{{"!a:hs", "@alice:hs"}, {"!b:hs", "@bob:hs"}} {
			if err := m.Put(ctx, put.room, put.user); err != nil {
				t.Fatal(err)
			}
		}
		for _, want := range []struct {
			room id.RoomID
			user id.UserID
		}{{"!a:hs", "@alice:hs"}, {"!b:hs", "@bob:hs"}} {
			if u, ok, err := m.UserOf(ctx, want.room); err != nil || !ok || u != want.user {
				t.Errorf("UserOf(%s) = %s, %v, %v; want %s", want.room, u, ok, err, want.user)
			}
			if r, err := m.For(ctx, want.user, noCreate, false); err != nil || r != want.room {
				t.Errorf("For(%s) = %s, %v; want %s", want.user, r, err, want.room)
			}
		}
	})
}

// TestForCreates: a user without a management room gets one on a real Dendrite: a direct chat of
// the gateway's account that invites her, recorded at once, so that asking again finds it.
func TestForCreates(t *testing.T) {
	hs := dendritetest.Start(t)
	hs.CreateUser(t, "gw", "password-gw")
	hs.CreateUser(t, "alice", "password-alice")
	gw := dendritetest.NewClient(t, hs.URL, "gw", "password-gw")
	alice := dendritetest.NewClient(t, hs.URL, "alice", "password-alice")
	s, err := store.Open(t.Context(), store.Config{Path: t.TempDir() + "/gw.db"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Migrate(t.Context(), matrix.Schema, idmap.Schema); err != nil {
		t.Fatal(err)
	}
	m := mgmtrooms.Rooms{Store: s, Scope: "matrix"}
	created := 0
	create := func(ctx context.Context, req *mautrix.ReqCreateRoom, encrypted bool) (*mautrix.RespCreateRoom, error) {
		created++
		if encrypted {
			t.Error("asked for an encrypted room")
		}
		return gw.Client.CreateRoom(ctx, req)
	}
	room, err := m.For(t.Context(), alice.UserID, create, false)
	if err != nil {
		t.Fatal(err)
	}
	invited := alice.WaitInvite(t, servertest.Scale(30*time.Second), nil)
	if invited != room {
		t.Fatalf("alice invited to %s, the management room is %s", invited, room)
	}
	ev := alice.Events(func(e *mevent.Event) bool { return e.RoomID == room && e.Type == mevent.StateMember })
	if len(ev) == 0 || !ev[len(ev)-1].Content.AsMember().IsDirect {
		t.Fatalf("the invitation into %s is not a direct chat: %d member events", room, len(ev))
	}
	if u, ok, err := m.UserOf(t.Context(), room); err != nil || !ok || u != alice.UserID {
		t.Fatalf("UserOf(%s) = %s, %v, %v", room, u, ok, err)
	}
	if again, err := m.For(t.Context(), alice.UserID, create, false); err != nil || again != room || created != 1 {
		t.Fatalf("asked again: %s, %v, %d rooms created", again, err, created)
	}
}
