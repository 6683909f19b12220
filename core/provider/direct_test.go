package provider

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
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
	if e := portal(group, bob); e.Membership.Direct || e.Sender != alice {
		t.Fatalf("group portal request: sender %s, direct %v; want from %s (whose commit added him), not direct", e.Sender, e.Membership.Direct, alice)
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

// TestFixedMembership: nobody joins a 1:1 (base_room_policy fixed_membership). An invite of a
// third person is refused before any commit, by the hub's provider (alice's invite) and by a
// follower's (bob's), and the inviter is told why (NoticeInviteFailed, fixedMembership). A commit
// that adds someone anyway, as a follower's provider that skipped that check would submit it, is
// refused by the hub (room.Authorize): the room's epoch and participants stay.
func TestFixedMembership(t *testing.T) {
	ctx := context.Background()
	a, b := pair(t)
	alice := event.NewUserURI(a.domain, "alice")
	bob, carol := event.NewUserURI(b.domain, "bob"), event.NewUserURI(b.domain, "carol")
	for _, u := range []event.UserURI{bob, carol} {
		if err := b.p.EnsureUser(ctx, u, event.NetworkMatrix); err != nil {
			t.Fatal(err)
		}
	}
	dm := a.p.NewRoomID()
	inv := membership(dm, alice, event.MembershipInvite, bob)
	inv.Membership.Direct = true
	publishOut(t, a, inv)
	expect(t, b, "bob's portal request", func(e *event.Envelope) bool { return e.Kind == event.KindPortalRequest && e.Room == dm })
	bg := groupAtHubEpoch(t, a, b, dm, bob)
	before, err := dbOf(a.st).loadRoom(ctx, dm)
	if err != nil {
		t.Fatal(err)
	}

	for _, side := range []struct {
		nd      *node
		inviter event.UserURI
	}{{a, alice}, {b, bob}} {
		publishOut(t, side.nd, membership(dm, side.inviter, event.MembershipInvite, carol))
		n := expectNotice(t, side.nd, side.inviter.Local()+" told", func(e *event.Envelope) bool { return e.Room == dm && e.Sender == side.inviter })
		if n.Notice.Code != event.NoticeInviteFailed || n.Notice.Reason != "fixedMembership" || n.Notice.Target != carol {
			t.Fatalf("notice for %s: %+v, want invite_failed of %s for fixedMembership", side.inviter, n.Notice, carol)
		}
	}

	resp, err := b.tp.Client.Update(ctx, dm, &protocol.UpdateRequest{Bundle: commitBundle(t, bg, mls.CommitOptions{Proposals: listAdds(t, bg, carol)})})
	if err != nil {
		t.Fatal(err)
	}
	if resp.ResponseCode != protocol.UpdateNotAllowed || !strings.Contains(resp.ErrorDescription, "fixed membership") {
		t.Fatalf("a commit adding carol to the 1:1: code %d %q, want notAllowed for fixed membership", resp.ResponseCode, resp.ErrorDescription)
	}
	rr, err := dbOf(a.st).loadRoom(ctx, dm)
	if err != nil || rr.Epoch != before.Epoch {
		t.Fatalf("room epoch %d → %+v (%v)", before.Epoch, rr, err)
	}
	c, err := loadClient(ctx, a.st, dm, alice)
	if err != nil {
		t.Fatal(err)
	}
	st, err := stateOfGroup(c.Group)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(st.Participants.Participants); got != 2 || directPeer(st, alice) != bob {
		t.Fatalf("participants after the refusals: %+v", st.Participants.Participants)
	}
}

// groupAtHubEpoch waits until u's client at nd is in room's epoch at its hub, and returns its
// group.
func groupAtHubEpoch(t testing.TB, hub, nd *node, room event.RoomURI, u event.UserURI) *mls.Group {
	t.Helper()
	var g *mls.Group
	waitFor(t, string(u)+"'s client in the hub's epoch", func() error {
		rr, err := dbOf(hub.st).loadRoom(context.Background(), room)
		if err != nil {
			return err
		}
		c, err := loadClient(context.Background(), nd.st, room, u)
		if err != nil {
			return err
		}
		if c.Group.Epoch() != rr.Epoch {
			return errors.New("not yet")
		}
		g = c.Group
		return nil
	})
	return g
}
