package portals_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/bridges/idmap"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/portals"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// The pair of the tests: a local user and a user of a partner.
const (
	alice = event.UserURI("mimi://localhost/u/alice")
	bob   = event.UserURI("mimi://clinic-b.example/u/bob")
)

// TestDMPairStore: the 1:1 rooms of a pair on both store backends (the 0004 migration of each
// dialect): every room of the pair names it, the newest is current until the peer writes in
// another one, and erasing the local user removes them all.
func TestDMPairStore(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		if err := s.Migrate(ctx, idmap.Schema, xmpp.Schema); err != nil {
			t.Fatal(err)
		}
		d := portals.Table{S: s, Now: time.Now}
		pair := portals.Pair{Local: "alice@hospital.example", Peer: bob}
		first, second := event.RoomURI("mimi://clinic-b.example/r/dm-1"), event.RoomURI("mimi://clinic-b.example/r/dm-2")
		current := func(want event.RoomURI) {
			t.Helper()
			if got, err := d.DMRoom(ctx, pair.Local, pair.Peer); err != nil || got != want {
				t.Fatalf("current room %s (%v), want %s", got, err, want)
			}
		}
		for i, r := range []event.RoomURI{first, second} {
			if err := d.CreateDM(ctx, portals.Room{URI: r, MUCLocal: "dm-" + strconv.Itoa(i), Kind: portals.KindDM}, pair); err != nil {
				t.Fatal(err)
			}
			current(r)
		}
		for _, r := range []event.RoomURI{first, second} {
			if got, err := d.PairOf(ctx, r); err != nil || got != pair {
				t.Fatalf("pair of %s: %+v (%v)", r, got, err)
			}
		}
		if err := d.UseDM(ctx, pair, first); err != nil {
			t.Fatal(err)
		}
		current(first)
		if err := d.UseDM(ctx, pair, first); err != nil { // already current: nothing changes
			t.Fatal(err)
		}
		current(first)
		if _, err := xmpp.EraseUser(ctx, s, alice, pair.Local); err != nil {
			t.Fatal(err)
		}
		for _, r := range []event.RoomURI{first, second} {
			if _, err := d.PairOf(ctx, r); !errors.Is(err, portals.ErrNoRoom) {
				t.Fatalf("pair of %s after erasure: %v", r, err)
			}
		}
		if _, err := d.DMRoom(ctx, pair.Local, pair.Peer); !errors.Is(err, portals.ErrNoRoom) {
			t.Fatalf("current room after erasure: %v", err)
		}
	})
}

// TestDMLocal: the 1:1 room's local part is HMAC-SHA-256 of the pair under the adapter's key,
// 15 bytes in lower-case unpadded base32 after "dm-" (the expected value computed independently),
// and another pair or key gives another room.
func TestDMLocal(t *testing.T) {
	key := []byte(strings.Repeat("k", 32))
	pair := portals.Pair{Local: "alice@hospital.example", Peer: bob}
	tests := []struct {
		name string
		key  []byte
		p    portals.Pair
		same bool
	}{
		{"same pair and key", key, pair, true},
		{"other peer", key, portals.Pair{Local: pair.Local, Peer: alice}, false},
		{"other local user", key, portals.Pair{Local: "carol@hospital.example", Peer: bob}, false},
		{"other key", []byte(strings.Repeat("q", 32)), pair, false},
	}
	const want = "dm-tviclu2s3vhyxulpjs6qsjvf"
	if got := portals.DMLocal(key, pair); got != want {
		t.Fatalf("DMLocal = %q, want %q", got, want)
	}
	for _, tc := range tests {
		if got := portals.DMLocal(tc.key, tc.p); (got == want) != tc.same {
			t.Errorf("%s: DMLocal = %q, same as %q: %v, want %v", tc.name, got, want, got == want, tc.same)
		}
	}
}
