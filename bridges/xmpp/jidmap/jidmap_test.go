package jidmap_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/jidescape"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/jidmap"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// The domains of the fuzz test's gateway.
const (
	testDomain = "localhost"
	testUsers  = "mimi.localhost"
	testRooms  = "rooms.localhost"
)

func TestMapper(t *testing.T) {
	st, err := store.Open(context.Background(), store.Config{Path: filepath.Join(t.TempDir(), "m.db")}, store.WithMigrations(xmpp.Schema))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m := &jidmap.Mapper{Domain: "hospital.example", Provider: "hospital.example", Users: "mimi.hospital.example", Rooms: "rooms.mimi.hospital.example",
		Opaque: jidmap.Opaque{S: st, Now: time.Now}}
	ctx := t.Context()
	users := []struct {
		uri event.UserURI
		jid string
	}{
		{"mimi://hospital.example/u/alice", "alice@hospital.example"},
		{"mimi://clinic-b.example/u/bob", `bob\40clinic-b.example@mimi.hospital.example`},
		{"mimi://clinic-b.example/u/dr.o%27neil", `dr.o\27neil\40clinic-b.example@mimi.hospital.example`},
		{"mimi://irc.example.com/u/jcapulet1583%40example.com", `jcapulet1583\40example.com\40irc.example.com@mimi.hospital.example`},
	}
	for _, u := range users {
		j, err := m.UserJID(ctx, u.uri)
		if err != nil || j.String() != u.jid {
			t.Errorf("UserJID(%s) = %s, %v; want %s", u.uri, j, err, u.jid)
			continue
		}
		back, err := m.UserURI(ctx, j)
		if err != nil || back != u.uri {
			t.Errorf("UserURI(%s) = %s, %v; want %s", j, back, err, u.uri)
		}
	}
	// Upper case does not survive PRECIS: an opaque localpart, stable and reversible.
	upper := event.UserURI("mimi://clinic-b.example/u/Bob")
	j1, err := m.UserJID(ctx, upper)
	if err != nil || !jidmap.IsOpaque(j1.Localpart()) {
		t.Fatalf("UserJID(%s) = %s, %v; want an opaque localpart", upper, j1, err)
	}
	j2, _ := m.UserJID(ctx, upper)
	if !j1.Equal(j2) {
		t.Fatalf("opaque localpart not stable: %s, %s", j1, j2)
	}
	if back, err := m.UserURI(ctx, j1); err != nil || back != upper {
		t.Fatalf("UserURI(%s) = %s, %v", j1, back, err)
	}
	for _, bad := range []string{`x-bbbbbbbbbbbbbbbbbbbb@mimi.hospital.example`, `bob@mimi.hospital.example`, `alice\40hospital.example@mimi.hospital.example`,
		`bob@other.example`, `\40x.example@mimi.hospital.example`} {
		if u, err := m.UserURI(ctx, jid.MustParse(bad)); !errors.Is(err, jidmap.ErrUnknownJID) {
			t.Errorf("UserURI(%s) = %s, %v; want jidmap.ErrUnknownJID", bad, u, err)
		}
	}
	rooms := []struct {
		uri   event.RoomURI
		local string
	}{
		{"mimi://hospital.example/r/ward7", "ward7"},
		{"mimi://hub.example/r/clubhouse", `clubhouse\40hub.example`},
	}
	for _, r := range rooms {
		if l, err := m.RoomLocal(ctx, r.uri); err != nil || l != r.local {
			t.Errorf("RoomLocal(%s) = %q, %v; want %q", r.uri, l, err, r.local)
		}
	}
	if r, err := m.NewRoomURI("ward7"); err != nil || r != "mimi://hospital.example/r/ward7" {
		t.Errorf("NewRoomURI = %s, %v", r, err)
	}
	if _, err := m.NewRoomURI(`a\40b.example`); err == nil {
		t.Errorf("NewRoomURI accepted a partner room name")
	}
	for _, tc := range []struct {
		u    event.UserURI
		nick string
	}{
		{"mimi://clinic-b.example/u/bob", "bob@clinic-b.example"},
		{"mimi://hospital.example/u/alice", "alice"},
		{"mimi://clinic-b.example/u/a%01b", ""},
		{"mimi://clinic-b.example/u/%E2%80%AE", ""},
	} {
		got := m.NickFor(tc.u)
		if tc.nick != "" && got != tc.nick {
			t.Errorf("NickFor(%s) = %q, want %q", tc.u, got, tc.nick)
		}
		if _, err := jid.New("room", m.Rooms, got); err != nil {
			t.Errorf("NickFor(%s) = %q is not a valid resourcepart: %v", tc.u, got, err)
		}
	}
}

// FuzzJIDMapping maps arbitrary strings as JIDs to MIMI users and rooms and back. A JID that maps
// to a user must map back to the same JID, and a MIMI URI must map to a JID that maps back to it.
func FuzzJIDMapping(f *testing.F) {
	for _, s := range []string{`bob\40clinic-b.example`, `dr.o\27neil\40clinic-b.example`, `\5c\40`, `x-aaaaaaaaaaaaaaaaaaaa`, `a\40b\40c.example`,
		`Bob\40Clinic.example`, `\20x\40y.example`, `bob\40localhost`, "ward7", `club\40hub.example`} {
		f.Add(s, "mimi://clinic-b.example/u/"+s)
	}
	st, err := store.Open(context.Background(), store.Config{Path: filepath.Join(f.TempDir(), "fuzz.db")}, store.WithMigrations(xmpp.Schema))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = st.Close() })
	m := &jidmap.Mapper{Domain: testDomain, Provider: testDomain, Users: testUsers, Rooms: testRooms, Opaque: jidmap.Opaque{S: st, Now: time.Now}}
	f.Fuzz(func(t *testing.T, local, uri string) {
		ctx := context.Background()
		_ = jidescape.Unescape(local)
		if j, err := jid.New(local, testUsers, ""); err == nil {
			if u, err := m.PuppetURI(ctx, j); err == nil {
				back, err := m.UserJID(ctx, u)
				if err != nil || !back.Equal(j) {
					t.Fatalf("puppet %s -> %s -> %v, %v", j, u, back, err)
				}
			}
		}
		if u, err := event.ParseUserURI(uri); err == nil {
			if n := m.NickFor(u); n == "" {
				t.Fatalf("empty nick for %s", u)
			} else if _, err := jid.New("room", testRooms, n); err != nil {
				t.Fatalf("nick %q for %s is not a valid resourcepart: %v", n, u, err)
			}
			j, err := m.UserJID(ctx, u)
			if err != nil {
				if !errors.Is(err, jidmap.ErrUnknownJID) && !errors.Is(err, event.ErrInvalidURI) {
					t.Fatalf("UserJID(%s): %v", u, err)
				}
				return
			}
			back, err := m.UserURI(ctx, j)
			// The way back gives the canonical (fully percent-encoded) form of the URI.
			if canonical := event.NewUserURI(u.Domain(), u.Local()); err != nil || back != canonical {
				t.Fatalf("user %s -> %s -> %s, %v", u, j, back, err)
			}
		}
		if r, err := event.ParseRoomURI(strings.Replace(uri, "/u/", "/r/", 1)); err == nil {
			l, err := m.RoomLocal(ctx, r)
			if err != nil {
				return
			}
			if _, err := jid.New(l, testRooms, ""); err != nil {
				t.Fatalf("room %s -> invalid localpart %q: %v", r, l, err)
			}
		}
	})
}
