package provider

import (
	"context"
	"fmt"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// processed waits until nd's provider has recorded the mimi.out envelope env as done.
func processed(t testing.TB, nd *node, env *event.Envelope) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s %s processed", env.Kind, env.ID), func() error {
		done, err := nd.st.IsProcessed(context.Background(), outScope, string(env.ID))
		if err == nil && !done {
			err = fmt.Errorf("not yet")
		}
		return err
	})
}

func roomEpoch(t testing.TB, nd *node, room event.RoomURI) uint64 {
	t.Helper()
	rr, err := dbOf(nd.st).loadRoom(context.Background(), room)
	if err != nil || rr == nil {
		t.Fatalf("room %s: %+v, %v", room, rr, err)
	}
	return rr.Epoch
}

// TestMembershipAnyOrder: adapters publish membership in the order they see it. A join of a room
// that does not exist yet creates it (an XMPP user starting a 1:1 publishes her own join before
// the invite); a join or invite of a member changes nothing (the creator's join after her
// invite created the room, a repeated invite); a local user who joins on her own is added by
// another local member. None of them blocks the room's partition.
func TestMembershipAnyOrder(t *testing.T) {
	ctx := context.Background()
	a, b := pair(t)
	alice, carol := event.NewUserURI(a.domain, "alice"), event.NewUserURI(a.domain, "carol")
	bob := event.NewUserURI(b.domain, "bob")
	if err := b.p.EnsureUser(ctx, bob, event.NetworkMatrix); err != nil {
		t.Fatal(err)
	}

	// Join first: the room is created with alice as its owner.
	dm := a.p.NewRoomID()
	join := membership(dm, alice, event.MembershipJoin, alice)
	publishOut(t, a, join)
	processed(t, a, join)
	if e := roomEpoch(t, a, dm); e != 0 {
		t.Fatalf("room created by a join is at epoch %d, want 0", e)
	}
	publishOut(t, a, membership(dm, alice, event.MembershipInvite, bob))
	expect(t, b, "bob's portal request", func(e *event.Envelope) bool { return e.Kind == event.KindPortalRequest && e.Room == dm })

	// Joins and invites of members: no commit, and the room goes on.
	epoch := roomEpoch(t, a, dm)
	for _, env := range []*event.Envelope{
		membership(dm, alice, event.MembershipJoin, alice),
		membership(dm, alice, event.MembershipInvite, bob),
		membership(dm, alice, event.MembershipInvite, alice),
	} {
		publishOut(t, a, env)
		processed(t, a, env)
	}
	bjoin := membership(dm, bob, event.MembershipJoin, bob)
	publishOut(t, b, bjoin)
	processed(t, b, bjoin)
	if e := roomEpoch(t, a, dm); e != epoch {
		t.Fatalf("joins of members moved the room from epoch %d to %d", epoch, e)
	}
	m := message(t, dm, alice, "still here")
	publishOut(t, a, m)
	expectText(t, b, m)

	// Carol (a local user without a client) joins on her own: alice's client adds her.
	cjoin := membership(dm, carol, event.MembershipJoin, carol)
	publishOut(t, a, cjoin)
	processed(t, a, cjoin)
	waitFor(t, "carol's client (from the Welcome, through the inbox)", func() error {
		_, err := loadClient(ctx, a.st, dm, carol)
		return err
	})
	if in, err := a.p.inGroup(ctx, dm, carol); err != nil || !in {
		t.Fatalf("carol in the group: %v, %v", in, err)
	}
	m = message(t, dm, carol, "hello from carol")
	publishOut(t, a, m)
	expectText(t, b, m)

	// A leave of a room nobody has is done at once.
	leave := membership(a.p.NewRoomID(), alice, event.MembershipLeave, alice)
	publishOut(t, a, leave)
	processed(t, a, leave)
}
