package consent

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// TestRequests walks a request through its states on both stores: asked once (not twice),
// granted, revoked (a new request stays revoked), allowed again, denied; a cancelled request
// can be made again; the records are listed for both users and pruned by age.
func TestRequests(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		c, err := New(ctx, st, Consent)
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
		now := t0
		c.now = func() time.Time { return now }
		berta := event.NewUserURI("amt-b.example", "berta")
		alice := event.NewUserURI("klinik-a.example", "alice")
		eve := event.NewUserURI("e.example", "eve")
		ask := func(requester event.UserURI, room event.RoomURI, want State, wantChanged bool) {
			t.Helper()
			got, changed, err := c.Ask(ctx, requester, berta, room)
			if err != nil || got != want || changed != wantChanged {
				t.Fatalf("Ask(%s, %q) = %q, %v, %v; want %q, %v", requester, room, got, changed, err, want, wantChanged)
			}
		}
		allows := func(requester event.UserURI, want bool) {
			t.Helper()
			if ok, err := c.Allows(ctx, berta, requester); err != nil || ok != want {
				t.Fatalf("Allows(%s) = %v, %v; want %v", requester, ok, err, want)
			}
		}
		ask(alice, "", Pending, true)
		ask(alice, "", Pending, false)
		allows(alice, false)
		now = now.Add(time.Minute)
		if err := c.Grant(ctx, berta, alice); err != nil {
			t.Fatal(err)
		}
		allows(alice, true)
		ask(alice, "", Granted, false)
		ask(alice, "mimi://klinik-a.example/r/ward", Granted, false) // a new room needs no new request
		now = now.Add(time.Minute)
		if err := c.Revoke(ctx, berta, alice); err != nil {
			t.Fatal(err)
		}
		allows(alice, false)
		ask(alice, "", Revoked, false)
		if err := c.Grant(ctx, berta, alice); err != nil { // she allows alice again herself
			t.Fatal(err)
		}
		allows(alice, true)

		ask(eve, "", Pending, true)
		if err := c.Deny(ctx, berta, eve); err != nil {
			t.Fatal(err)
		}
		ask(eve, "", Denied, false)
		allows(eve, false)

		ask(eve, "mimi://e.example/r/x", Pending, true) // denial was about the request of any room...
		if ok, err := c.Cancel(ctx, eve, berta, "mimi://e.example/r/x"); err != nil || !ok {
			t.Fatalf("Cancel = %v, %v", ok, err)
		}
		if ok, err := c.Cancel(ctx, eve, berta, "mimi://e.example/r/x"); err != nil || ok {
			t.Fatalf("second Cancel = %v, %v; want false", ok, err)
		}
		ask(eve, "mimi://e.example/r/x", Pending, true)

		reqs, err := c.Requests(ctx, berta, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(reqs) != 3 {
			t.Fatalf("berta's requests: %+v", reqs)
		}
		mine, err := c.Requests(ctx, alice, 10)
		if err != nil || len(mine) != 1 || mine[0].State != Granted || mine[0].Target != berta || !mine[0].Created.Equal(t0) {
			t.Fatalf("alice's requests: %+v, %v", mine, err)
		}
		grants, err := c.Grants(ctx, berta, 10)
		if err != nil || len(grants) != 1 || grants[0].Requester != alice {
			t.Fatalf("grants: %+v, %v", grants, err)
		}

		if _, _, err := c.Ask(ctx, "alice", berta, ""); !errors.Is(err, ErrInvalid) {
			t.Errorf("Ask with a requester that is no URI: %v", err)
		}
		n, err := PruneRecords(ctx, st, t0.Add(2*time.Minute))
		if err != nil || n != 0 {
			t.Fatalf("prune before the last changes: %d, %v", n, err)
		}
		n, err = PruneRecords(ctx, st, now.Add(time.Millisecond))
		if err != nil || n != 3 {
			t.Fatalf("prune after the last changes: %d, %v; want 3", n, err)
		}
		allows(alice, true) // the grant in force is not a record

		if err := c.SetReachability(ctx, berta, Nobody); err != nil {
			t.Fatal(err)
		}
		ask(eve, "", Pending, true) // the denial was pruned
		n, err = EraseUser(ctx, st, berta)
		if err != nil || n != 3 { // her setting, alice's grant, eve's request
			t.Fatalf("EraseUser = %d, %v; want 3 rows", n, err)
		}
		if r, own, err := c.Reachability(ctx, berta); err != nil || own || r != Consent {
			t.Fatalf("after erasure: %q own %v, %v", r, own, err)
		}
		allows(alice, false)
	})
}
