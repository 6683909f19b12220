package xmpp

import (
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/occupants"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/portals"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xstanza"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// TestMembershipAndPortals covers rooms created by partners (portal requests with an invitation),
// MIMI membership changes shown as occupants, topics shown as the subject, and an XMPP user
// inviting a MIMI user.
func TestMembershipAndPortals(t *testing.T) {
	e := newEnv(t)
	alice := dialClient(t, e.p, "alice", "phone")
	hubRoom := event.RoomURI("mimi://hub.example/r/clubhouse")
	hubMUC := `clubhouse\40hub.example@` + testRooms
	carolURI := event.UserURI("mimi://clinic-b.example/u/carol")
	mk := func(kind event.Kind, sender event.UserURI) *event.Envelope {
		return &event.Envelope{ID: event.EventID("mimi:" + t.Name() + "-" + time.Now().Format("150405.000000000")), Kind: kind, Room: hubRoom,
			Sender: sender, Timestamp: time.Now(), Origin: event.Origin{Network: event.NetworkMIMI}}
	}

	// A partner's hub asks for a portal and invites alice: she gets a mediated invitation.
	pr := mk(event.KindPortalRequest, testBob)
	pr.Metadata = &event.Metadata{Name: "Clubhouse", Topic: "Fallbesprechung"}
	pr.Membership = &event.Membership{Action: event.MembershipInvite, Target: aliceURI}
	e.publishIn(pr)
	inv := alice.expect("invitation", and(named("message"), from(hubMUC), hasChild(xstanza.NSMUCUser, "x")))
	if i := inv.child(xstanza.NSMUCUser, "x").child("", "invite"); i == nil || i.attr("from") != testBobPuppet {
		t.Fatalf("invitation: %s", inv)
	}

	// A portal request that names only alice (not who invited her) does not claim she invited
	// herself.
	own := mk(event.KindPortalRequest, aliceURI)
	own.Room = "mimi://hub.example/r/ward-9"
	own.Membership = &event.Membership{Action: event.MembershipInvite, Target: aliceURI}
	e.publishIn(own)
	inv9 := alice.expect("invitation to ward 9", and(named("message"), from(`ward-9\40hub.example@`+testRooms), hasChild(xstanza.NSMUCUser, "x")))
	if i := inv9.child(xstanza.NSMUCUser, "x").child("", "invite"); i == nil || i.attr("from") != "" {
		t.Fatalf("invitation without a known inviter: %s", inv9)
	}

	// Bob joins on the MIMI side before alice is in the room; alice sees him when she joins, and
	// the topic as the subject.
	j := mk(event.KindMembership, testBob)
	j.Membership = &event.Membership{Action: event.MembershipJoin, Target: testBob}
	e.publishIn(j)
	waitFor(t, 10*time.Second, "bob to become a member", func() bool {
		n, err := e.a.db.occ().MemberNick(t.Context(), hubRoom, testBob)
		return err == nil && n == bobNickMU
	})
	alice.send(`<presence to='` + hubMUC + `/Alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>`)
	alice.expect("bob's presence", and(named("presence"), from(hubMUC+"/"+bobNickMU)))
	subj := alice.expect("subject", and(named("message"), from(hubMUC), hasChild("", "subject")))
	if subj.child("", "subject").Text != "Fallbesprechung" {
		t.Fatalf("subject: %s", subj)
	}

	// Carol joins on the MIMI side while alice is there: a presence; then she is kicked.
	cj := mk(event.KindMembership, testBob)
	cj.Membership = &event.Membership{Action: event.MembershipJoin, Target: carolURI}
	e.publishIn(cj)
	alice.expect("carol's presence", and(named("presence"), from(hubMUC+"/carol@clinic-b.example")))
	kick := mk(event.KindMembership, testBob)
	kick.Membership = &event.Membership{Action: event.MembershipKick, Target: carolURI}
	e.publishIn(kick)
	gone := alice.expect("carol kicked", and(named("presence"), from(hubMUC+"/carol@clinic-b.example"), func(n *node) bool {
		return n.attr("type") == "unavailable"
	}))
	if x := gone.child(xstanza.NSMUCUser, "x"); x == nil || len(x.Nodes) < 2 || x.Nodes[1].attr("code") != "307" {
		t.Fatalf("kick presence: %s", gone)
	}

	// A new topic from MIMI becomes the subject.
	md := mk(event.KindRoomMetadata, testBob)
	md.Metadata = &event.Metadata{Topic: "Neue Tagesordnung"}
	e.publishIn(md)
	alice.expect("new subject", and(named("message"), from(hubMUC), func(n *node) bool {
		s := n.child("", "subject")
		return s != nil && s.Text == "Neue Tagesordnung"
	}))

	// Alice invites a MIMI user from XMPP (mediated invitation to the puppet): a MIMI invite.
	alice.send(`<message to='` + hubMUC + `' id='inv1'><x xmlns='http://jabber.org/protocol/muc#user'><invite to='dave\40clinic-b.example@` + testUsers + `'><reason>bitte</reason></invite></x></message>`)
	invite := e.out.wait(t, "invite", func(x *event.Envelope) bool {
		return x.Kind == event.KindMembership && x.Membership.Action == event.MembershipInvite
	})
	if invite.Sender != aliceURI || invite.Membership.Target != "mimi://clinic-b.example/u/dave" || invite.Room != hubRoom {
		t.Fatalf("invite envelope: %+v", invite)
	}
	alice.expect("dave's presence", and(named("presence"), from(hubMUC+"/dave@clinic-b.example")))
	// The partner added alice (the invitation is the result of an MLS add), so her joining the MUC
	// published no MIMI join: it would be on the bus before the invite, from the same room worker.
	if n := e.out.count(func(x *event.Envelope) bool {
		return x.Kind == event.KindMembership && x.Membership.Action == event.MembershipJoin
	}); n != 0 {
		t.Fatalf("alice's join published %d join envelopes, want 0", n)
	}

	// Alice changes the subject herself: a metadata envelope.
	alice.send(`<message to='` + hubMUC + `' type='groupchat' id='s1'><subject>Von XMPP</subject></message>`)
	meta := e.out.wait(t, "metadata", isKind(event.KindRoomMetadata))
	if meta.Metadata.Topic != "Von XMPP" || meta.Sender != aliceURI {
		t.Fatalf("metadata envelope: %+v", meta)
	}

	// Alice is removed on the MIMI side: she leaves the MUC with a kick status.
	ka := mk(event.KindMembership, testBob)
	ka.Membership = &event.Membership{Action: event.MembershipKick, Target: aliceURI}
	e.publishIn(ka)
	self := alice.expect("alice kicked", and(named("presence"), from(hubMUC+"/Alice"), func(n *node) bool { return n.attr("type") == "unavailable" }))
	codes := map[string]bool{}
	for _, s := range self.child(xstanza.NSMUCUser, "x").Nodes {
		codes[s.attr("code")] = true
	}
	if !codes["110"] || !codes["307"] {
		t.Fatalf("self kick presence: %s", self)
	}
	alice.send(`<message to='` + hubMUC + `' type='groupchat' id='after-kick'><body>noch da?</body></message>`)
	if c := errorCondition(alice.expect("error after kick", isError("after-kick"))); c != "not-acceptable" {
		t.Fatalf("message after kick: condition %q", c)
	}
}

// TestInvitationAfterInterruptedDelivery: a portal request whose first delivery recorded the
// invited local user as a member and then stopped before the invitation went out (a failed send,
// a crash) still invites her when it is delivered again; once she is in the room, a repeated
// request does not invite her a second time.
func TestInvitationAfterInterruptedDelivery(t *testing.T) {
	e := newEnv(t)
	alice := dialClient(t, e.p, "alice", "phone")
	ctx := t.Context()
	uri := event.RoomURI("mimi://hub.example/r/ward-3")
	muc := `ward-3\40hub.example@` + testRooms
	local, err := e.a.m.RoomLocal(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	// What the first delivery left: the portal and alice as a member, no invitation.
	if _, err := e.a.db.portals().Create(ctx, portals.Room{URI: uri, MUCLocal: local, Kind: portals.KindMUC}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.db.occ().AddMember(ctx, uri, occupants.Member{User: aliceURI, Nick: "alice@" + testDomain}); err != nil {
		t.Fatal(err)
	}
	pr := &event.Envelope{ID: event.EventID("mimi:" + t.Name()), Kind: event.KindPortalRequest, Room: uri, Sender: testBob,
		Timestamp: time.Now(), Origin: event.Origin{Network: event.NetworkMIMI},
		Membership: &event.Membership{Action: event.MembershipInvite, Target: aliceURI}}
	e.publishIn(pr)
	isInvite := and(named("message"), from(muc), hasChild(xstanza.NSMUCUser, "x"))
	alice.expect("invitation on redelivery", isInvite)

	// In the room, a repeated request (here: a new envelope for the same invitation) is a
	// duplicate; the topic sent after it shows it was handled.
	alice.send(`<presence to='` + muc + `/Alice'><x xmlns='http://jabber.org/protocol/muc'/></presence>`)
	alice.expect("own presence", and(named("presence"), from(muc+"/Alice")))
	again := *pr
	again.ID = event.EventID("mimi:" + t.Name() + "-again")
	e.publishIn(&again)
	md := &event.Envelope{ID: event.EventID("mimi:" + t.Name() + "-topic"), Kind: event.KindRoomMetadata, Room: uri, Sender: testBob,
		Timestamp: time.Now(), Origin: event.Origin{Network: event.NetworkMIMI}, Metadata: &event.Metadata{Topic: "Visite"}}
	e.publishIn(md)
	alice.expect("the topic", and(named("message"), from(muc), func(n *node) bool {
		s := n.child("", "subject")
		return s != nil && s.Text == "Visite"
	}))
	alice.none("second invitation", isInvite)
}
