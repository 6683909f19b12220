package provider

import (
	"context"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// TestDirectRoom: an invite an adapter marks as a 1:1 (Membership.Direct) into a new room of ours
// sets base_room_policy fixed_membership with the peer's Add, and the peer's provider learns it
// from the room itself: its portal request is marked Direct and comes from the inviter. A plain
// invite, and a 1:1 invite into a room that already has two participants, give an ordinary
// portal request (from the invited user herself) and leave the policy unset.
func TestDirectRoom(t *testing.T) {
	ctx := context.Background()
	a, b := pair(t)
	alice := event.NewUserURI(a.domain, "alice")
	bob, dave := event.NewUserURI(b.domain, "bob"), event.NewUserURI(b.domain, "dave")
	for _, u := range []event.UserURI{bob, dave} {
		if err := b.p.EnsureUser(ctx, u, event.NetworkMatrix); err != nil {
			t.Fatal(err)
		}
	}
	portal := func(room event.RoomURI, target event.UserURI) *event.Envelope {
		t.Helper()
		return expect(t, b, string(target)+"'s portal request", func(e *event.Envelope) bool {
			return e.Kind == event.KindPortalRequest && e.Room == room && e.Membership != nil && e.Membership.Target == target
		})
	}
	policyOf := func(room event.RoomURI) bool {
		t.Helper()
		c, err := loadClient(ctx, a.st, room, alice)
		if err != nil {
			t.Fatal(err)
		}
		st, err := stateOfGroup(c.Group)
		if err != nil {
			t.Fatal(err)
		}
		return st.Policy.Direct()
	}

	dm := a.p.NewRoomID()
	inv := membership(dm, alice, event.MembershipInvite, bob)
	inv.Membership.Direct = true
	publishOut(t, a, inv)
	if e := portal(dm, bob); !e.Membership.Direct || e.Sender != alice {
		t.Fatalf("1:1 portal request: sender %s, direct %v; want from %s, direct", e.Sender, e.Membership.Direct, alice)
	}
	if !policyOf(dm) {
		t.Fatal("the 1:1 has no fixed-membership base policy at its hub")
	}

	group := a.p.NewRoomID()
	publishOut(t, a, membership(group, alice, event.MembershipInvite, bob))
	if e := portal(group, bob); e.Membership.Direct || e.Sender != bob {
		t.Fatalf("group portal request: sender %s, direct %v; want from %s, not direct", e.Sender, e.Membership.Direct, bob)
	}
	late := membership(group, alice, event.MembershipInvite, dave)
	late.Membership.Direct = true
	publishOut(t, a, late)
	if e := portal(group, dave); e.Membership.Direct {
		t.Fatal("a 1:1 invite into a room of two made it a 1:1")
	}
	if policyOf(group) {
		t.Fatal("the group got a base policy")
	}
}
