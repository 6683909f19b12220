package xmpp

import (
	"fmt"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/bridges/idmap"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/portals"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xstanza"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

func TestAffiliationMapping(t *testing.T) {
	for _, tc := range []struct {
		role      event.Role
		aff, mrol string
	}{
		{event.RoleOwner, "owner", "moderator"}, {event.RoleAdmin, "admin", "moderator"},
		{event.RoleRegular, "member", "participant"}, {event.RoleBanned, "outcast", "none"},
	} {
		aff, r := affiliationOf(tc.role)
		if aff != tc.aff || r != tc.mrol {
			t.Errorf("role %d: %s/%s, want %s/%s", tc.role, aff, r, tc.aff, tc.mrol)
		}
		if back, ok := roleOfAffiliation(aff); !ok || back != tc.role {
			t.Errorf("affiliation %s: role %d %v, want %d", aff, back, ok, tc.role)
		}
	}
	for _, aff := range []string{"none", "", "moderator", "Owner"} {
		if _, ok := roleOfAffiliation(aff); ok {
			t.Errorf("affiliation %q maps to a role", aff)
		}
	}
}

// TestRolesAndAffiliations: MIMI role changes appear as affiliations of the occupants' presence
// (through the real Prosody), and an occupant's muc#admin affiliation changes become role, ban
// and unban requests on mimi.out.
func TestRolesAndAffiliations(t *testing.T) {
	e := newEnv(t)
	alice := dialClient(t, e.p, "alice", "phone")
	hubRoom := event.RoomURI("mimi://hub.example/r/roles")
	hubMUC := `roles\40hub.example@` + testRooms
	n := 0
	mk := func(action event.MembershipAction, target event.UserURI, role event.Role) *event.Envelope {
		n++
		return &event.Envelope{ID: event.EventID(fmt.Sprintf("mimi:%s-%d", t.Name(), n)), Kind: event.KindMembership, Room: hubRoom,
			Sender: testBob, Timestamp: time.Now(), Origin: event.Origin{Network: event.NetworkMIMI},
			Membership: &event.Membership{Action: action, Target: target, Role: role}}
	}
	item := func(n *node) *node {
		if x := n.child(xstanza.NSMUCUser, "x"); x != nil {
			return x.child("", "item")
		}
		return nil
	}
	withAffiliation := func(aff string) func(n *node) bool {
		return func(n *node) bool { it := item(n); return it != nil && it.attr("affiliation") == aff }
	}

	pr := mk(event.MembershipInvite, aliceURI, 0)
	pr.Kind = event.KindPortalRequest
	e.publishIn(pr)
	alice.expect("invitation", and(named("message"), from(hubMUC), hasChild(xstanza.NSMUCUser, "x")))
	e.publishIn(mk(event.MembershipJoin, testBob, 0))
	waitFor(t, 10*time.Second, "bob to become a member", func() bool {
		n, err := e.a.db.occ().MemberNick(t.Context(), hubRoom, testBob)
		return err == nil && n == bobNickMU
	})
	alice.send(`<presence to='` + hubMUC + `/Alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>`)
	alice.expect("bob's presence as member", and(named("presence"), from(hubMUC+"/"+bobNickMU), withAffiliation("member")))
	alice.expect("own presence", and(named("presence"), from(hubMUC+"/Alice"), withAffiliation("member")))

	// MIMI → XMPP: bob becomes admin, alice owner.
	e.publishIn(mk(event.MembershipRole, testBob, event.RoleAdmin))
	p := alice.expect("bob's presence as admin", and(named("presence"), from(hubMUC+"/"+bobNickMU), withAffiliation("admin")))
	if item(p).attr("role") != "moderator" || p.attr("type") != "" {
		t.Fatalf("bob's presence: %s", p)
	}
	e.publishIn(mk(event.MembershipRole, aliceURI, event.RoleOwner))
	self := alice.expect("own presence as owner", and(named("presence"), from(hubMUC+"/Alice"), withAffiliation("owner")))
	if x := self.child(xstanza.NSMUCUser, "x"); x == nil || len(x.Nodes) < 2 || x.Nodes[1].attr("code") != "110" {
		t.Fatalf("own presence without status 110: %s", self)
	}

	// XMPP → MIMI: alice demotes bob (by JID) and bans carol (by puppet JID).
	carol := event.UserURI("mimi://clinic-b.example/u/carol")
	alice.send(`<iq to='` + hubMUC + `' type='set' id='aff1'><query xmlns='http://jabber.org/protocol/muc#admin'>` +
		`<item affiliation='member' jid='` + testBobPuppet + `'/>` +
		`<item affiliation='outcast' jid='carol\40clinic-b.example@mimi.localhost'><reason>spam</reason></item></query></iq>`)
	res := alice.expect("result of the affiliation change", and(named("iq"), func(n *node) bool { return n.attr("id") == "aff1" }))
	if res.attr("type") != "result" {
		t.Fatalf("affiliation change answered %s", res)
	}
	role := e.out.wait(t, "bob's demotion", func(x *event.Envelope) bool {
		return x.Kind == event.KindMembership && x.Membership.Action == event.MembershipRole && x.Membership.Target == testBob
	})
	if role.Sender != aliceURI || role.Room != hubRoom || role.Membership.Role != event.RoleRegular || role.Origin.Network != event.NetworkXMPP {
		t.Fatalf("role envelope %+v %+v", role, role.Membership)
	}
	ban := e.out.wait(t, "carol's ban", func(x *event.Envelope) bool {
		return x.Kind == event.KindMembership && x.Membership.Action == event.MembershipBan && x.Membership.Target == carol
	})
	if ban.Sender != aliceURI || ban.Membership.Reason != "spam" {
		t.Fatalf("ban envelope %+v %+v", ban, ban.Membership)
	}

	// MIMI bans bob: he leaves with status 301; alice's "none" for him is then an unban request,
	// by nickname it would no longer resolve, so by JID.
	e.publishIn(mk(event.MembershipBan, testBob, event.RoleBanned))
	gone := alice.expect("bob banned", and(named("presence"), from(hubMUC+"/"+bobNickMU), func(n *node) bool { return n.attr("type") == "unavailable" }))
	if x := gone.child(xstanza.NSMUCUser, "x"); x == nil || len(x.Nodes) < 2 || x.Nodes[1].attr("code") != "301" || item(gone).attr("affiliation") != "outcast" {
		t.Fatalf("ban presence: %s", gone)
	}
	alice.send(`<iq to='` + hubMUC + `' type='set' id='aff2'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='none' jid='` + testBobPuppet + `'/></query></iq>`)
	alice.expect("result of the unban", and(named("iq"), func(n *node) bool { return n.attr("id") == "aff2" && n.attr("type") == "result" }))
	unban := e.out.wait(t, "bob's unban", func(x *event.Envelope) bool {
		return x.Kind == event.KindMembership && x.Membership.Action == event.MembershipRole && x.Membership.Target == testBob && x.Membership.Role == 0
	})
	if unban.Sender != aliceURI {
		t.Fatalf("unban envelope %+v", unban)
	}

	// Refused: an unknown affiliation, a user the gateway cannot name, a non-occupant.
	for _, tc := range []struct{ id, item, cond string }{
		{"aff3", `<item affiliation='king' jid='` + testBobPuppet + `'/>`, "bad-request"},
		{"aff4", `<item affiliation='admin' jid='someone@elsewhere.example'/>`, "jid-malformed"},
		{"aff5", `<item affiliation='admin' nick='nobody'/>`, "jid-malformed"},
	} {
		alice.send(`<iq to='` + hubMUC + `' type='set' id='` + tc.id + `'><query xmlns='http://jabber.org/protocol/muc#admin'>` + tc.item + `</query></iq>`)
		if c := errorCondition(alice.expect(tc.id, isError(tc.id))); c != tc.cond {
			t.Errorf("%s: condition %q, want %q", tc.id, c, tc.cond)
		}
	}
	carolC := dialClient(t, e.p, "carol", "laptop")
	carolC.send(`<iq to='` + hubMUC + `' type='set' id='aff6'><query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='owner' jid='carol@localhost'/></query></iq>`)
	if c := errorCondition(carolC.expect("non-occupant", isError("aff6"))); c != "not-acceptable" {
		t.Errorf("non-occupant: condition %q", c)
	}
}

// TestRoleStore: stored roles on both store backends (the 0002 migration of each dialect): a
// missing row is member, owner and outcast are kept and replaced, member and role 0 drop the row.
func TestRoleStore(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		if err := s.Migrate(ctx, idmap.Schema, Schema); err != nil {
			t.Fatal(err)
		}
		d := &db{s: s, now: time.Now}
		r := event.RoomURI("mimi://hub.example/r/store")
		if _, err := d.portals().Create(ctx, portals.Room{URI: r, MUCLocal: "store", Kind: portals.KindMUC}); err != nil {
			t.Fatal(err)
		}
		for _, step := range []struct {
			set, want event.Role
		}{
			{0, event.RoleRegular}, {event.RoleOwner, event.RoleOwner}, {event.RoleBanned, event.RoleBanned},
			{event.RoleRegular, event.RoleRegular}, {event.RoleAdmin, event.RoleAdmin}, {event.RoleNone, event.RoleRegular},
		} {
			if err := d.occ().SetRole(ctx, r, testBob, step.set); err != nil {
				t.Fatal(err)
			}
			if got, err := d.occ().Role(ctx, r, testBob); err != nil || got != step.want {
				t.Fatalf("after role %d: %d (%v), want %d", step.set, got, err, step.want)
			}
		}
	})
}
