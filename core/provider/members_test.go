package provider

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/room"
)

func TestMembershipChanges(t *testing.T) {
	const (
		alice = event.UserURI("mimi://a.example/u/alice")
		bob   = event.UserURI("mimi://b.example/u/bob")
		carol = event.UserURI("mimi://a.example/u/carol")
		dave  = event.UserURI("mimi://b.example/u/dave")
	)
	P := func(ps ...any) *room.ParticipantList {
		l := &room.ParticipantList{}
		for i := 0; i < len(ps); i += 2 {
			l.Participants = append(l.Participants, room.Participant{User: ps[i].(event.UserURI), Role: room.RoleIndex(ps[i+1].(int))})
		}
		return l
	}
	never := func(event.UserURI) bool { return false }
	left := func(u event.UserURI) bool { return u == bob }
	for _, tc := range []struct {
		name          string
		before, after *room.ParticipantList
		committer     event.UserURI
		self          func(event.UserURI) bool
		want          []membershipChange
	}{
		{"nothing", P(alice, 4), P(alice, 4), alice, never, nil},
		{"invite", P(alice, 4), P(alice, 4, bob, 2), alice, never,
			[]membershipChange{{event.MembershipInvite, bob, alice, 2}}},
		{"self add is a join", P(alice, 4), P(alice, 4, bob, 2), bob, never,
			[]membershipChange{{event.MembershipJoin, bob, bob, 2}}},
		{"added as admin", P(alice, 4), P(alice, 4, bob, 3), alice, never,
			[]membershipChange{{event.MembershipInvite, bob, alice, 3}, {event.MembershipRole, bob, alice, 3}}},
		{"ban of a non-participant", P(alice, 4), P(alice, 4, bob, 1), alice, never,
			[]membershipChange{{event.MembershipBan, bob, alice, 1}}},
		{"promotion and ban", P(alice, 4, bob, 2, carol, 3), P(alice, 4, bob, 3, carol, 1), alice, never,
			[]membershipChange{{event.MembershipRole, bob, alice, 3}, {event.MembershipBan, carol, alice, 1}}},
		{"kick", P(alice, 4, bob, 2), P(alice, 4), alice, never,
			[]membershipChange{{event.MembershipKick, bob, alice, 0}}},
		{"leave committed by the leaver", P(alice, 4, bob, 2), P(alice, 4), bob, never,
			[]membershipChange{{event.MembershipLeave, bob, bob, 0}}},
		{"leave by SelfRemove committed by another", P(alice, 4, bob, 2, dave, 2), P(alice, 4, dave, 2), dave, left,
			[]membershipChange{{event.MembershipLeave, bob, bob, 0}}},
		{"unban", P(alice, 4, bob, 1), P(alice, 4), alice, never,
			[]membershipChange{{event.MembershipRole, bob, alice, 0}}},
		{"demotion", P(alice, 4, bob, 4), P(alice, 4, bob, 2), alice, never,
			[]membershipChange{{event.MembershipRole, bob, alice, 2}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := membershipChanges(tc.before, tc.after, tc.committer, tc.self)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestMembershipPublished: the participant-list changes A's owner makes reach B's bus as
// KindMembership envelopes with the right action, target and role, and a change is not echoed
// to the network of the local user who made it (it reaches A's other network).
func TestMembershipPublished(t *testing.T) {
	ctx := context.Background()
	a, b := pair(t)
	alice, bob, r := invited(t, a, b)
	carol := event.NewUserURI(a.domain, "carol")
	dave := event.NewUserURI(a.domain, "dave") // an XMPP user of A
	if err := a.p.EnsureUser(ctx, carol, event.NetworkMatrix); err != nil {
		t.Fatal(err)
	}
	if err := a.p.EnsureUser(ctx, dave, event.NetworkXMPP); err != nil {
		t.Fatal(err)
	}
	xmppIn := make(chan *event.Envelope, 64)
	sub, err := a.bus.ConsumeIn(ctx, "test-xmpp", event.NetworkXMPP, func(_ context.Context, d bus.Delivery) error {
		xmppIn <- d.Envelope
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Stop(context.Background()) })
	expectXMPP := func(what string, match func(*event.Envelope) bool) *event.Envelope {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for {
			select {
			case e := <-xmppIn:
				if match(e) {
					return e
				}
			case <-deadline:
				t.Fatalf("%s: no matching envelope on A's mimi.in.xmpp", what)
			}
		}
	}
	isMember := func(action event.MembershipAction, target event.UserURI) func(*event.Envelope) bool {
		return func(e *event.Envelope) bool {
			return e.Kind == event.KindMembership && e.Membership.Action == action && e.Membership.Target == target
		}
	}
	seen := map[event.EventID]event.UserURI{} // one envelope per change, the same on every bus
	check := func(e *event.Envelope, sender event.UserURI, role room.RoleIndex) {
		t.Helper()
		if e.Room != r || e.Sender != sender || e.Origin.Network != event.NetworkMIMI || e.Membership.Role != role ||
			!strings.HasPrefix(string(e.ID), "mimi:") {
			t.Fatalf("envelope %+v %+v, want sender %s role %d", e, e.Membership, sender, role)
		}
		if u, ok := seen[e.ID]; ok && u != e.Membership.Target {
			t.Fatalf("envelope ID %s reused for %s and %s", e.ID, u, e.Membership.Target)
		}
		seen[e.ID] = e.Membership.Target
	}

	// Adds: B sees carol's invite; dave's client is created by his Welcome.
	for _, u := range []event.UserURI{carol, dave} {
		publishOut(t, a, membership(r, alice, event.MembershipInvite, u))
		check(expect(t, b, "invite of "+string(u), isMember(event.MembershipInvite, u)), alice, room.RoleRegular)
		waitFor(t, string(u)+"'s client", func() error {
			_, err := loadClient(ctx, a.st, r, u)
			return err
		})
	}

	expect(t, a, "carol's portal request", func(e *event.Envelope) bool { return e.Kind == event.KindPortalRequest })

	// Alice (Matrix) makes Bob admin: B's Matrix adapter and A's XMPP adapter see it, A's
	// Matrix adapter (where the change came from) does not.
	role := membership(r, alice, event.MembershipRole, bob)
	role.Membership.Role = room.RoleAdmin
	publishOut(t, a, role)
	check(expect(t, b, "bob's promotion", isMember(event.MembershipRole, bob)), alice, room.RoleAdmin)
	check(expectXMPP("bob's promotion at A", isMember(event.MembershipRole, bob)), alice, room.RoleAdmin)
	quiet(t, a, 300*time.Millisecond)

	// Bob (admin, at B) kicks carol: A's Matrix adapter hears of it this time.
	publishOut(t, b, membership(r, bob, event.MembershipKick, carol))
	check(expect(t, a, "carol's kick", isMember(event.MembershipKick, carol)), bob, room.RoleNone)

	// Alice bans Bob: B hears it although Bob's client there is the one removed.
	publishOut(t, a, membership(r, alice, event.MembershipBan, bob))
	check(expect(t, b, "bob's ban", isMember(event.MembershipBan, bob)), alice, room.RoleBanned)
	check(expectXMPP("bob's ban at A", isMember(event.MembershipBan, bob)), alice, room.RoleBanned)

	// Alice lifts the ban (role 0): bob leaves the list; A's XMPP adapter sees role 0.
	publishOut(t, a, membership(r, alice, event.MembershipRole, bob))
	check(expectXMPP("bob's unban at A", isMember(event.MembershipRole, bob)), alice, room.RoleNone)
	if _, ok, err := dbOf(a.st).roleOf(ctx, r, bob); err != nil || ok {
		t.Fatalf("bob still listed after the unban (%v)", err)
	}

	// Dave (XMPP) leaves: A's Matrix adapter (alice) sees a leave by dave.
	publishOut(t, a, membership(r, dave, event.MembershipLeave, dave))
	check(expect(t, a, "dave's leave", isMember(event.MembershipLeave, dave)), dave, room.RoleNone)
}
