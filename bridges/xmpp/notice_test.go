package xmpp

import (
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/jid"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// TestNotices: a failure a local user caused reaches them in words: in a room they are in as a
// message of the room (in the language their client declared), elsewhere as a chat message from
// the gateway's address naming the conversation; after a failed invite the invitee leaves the
// room.
func TestNotices(t *testing.T) {
	e := newEnv(t)
	alice := dialClient(t, e.p, "alice", "phone")
	joinRoom(t, alice, ward7, "Alice")
	join := &event.Envelope{ID: "mimi:bob-joins", Kind: event.KindMembership, Room: ward7URI, Sender: testBob, Timestamp: time.Now(),
		Origin: event.Origin{Network: event.NetworkMIMI}, Membership: &event.Membership{Action: event.MembershipJoin, Target: testBob}}
	e.publishIn(join)
	alice.expect("bob's presence", and(named("presence"), from(ward7+"/"+bobNickMU)))
	// Alice's client speaks German.
	alice.send(`<message to='` + ward7 + `' type='groupchat' id='g1' xml:lang='de-DE'><body>Hallo</body></message>`)
	e.out.wait(t, "alice's message", func(x *event.Envelope) bool { return x.Origin.Event == "g1" })
	notice := func(id string, room event.RoomURI, n event.Notice) {
		e.publishIn(&event.Envelope{ID: event.EventID("mimi:" + id), Kind: event.KindNotice, Room: room, Sender: aliceURI, Timestamp: time.Now(),
			Origin: event.Origin{Network: event.NetworkXMPP, Room: event.NativeRoomID(ward7)}, Notice: &n})
	}

	notice("n1", ward7URI, event.Notice{Code: event.NoticeInviteFailed, Correlation: "c0ffee", Target: testBob, Reason: "userUnknown"})
	m := alice.expect("the room's notice", and(named("message"), from(ward7), hasChild("", "body")))
	if body := m.child("", "body").Text; m.attr("type") != "groupchat" ||
		body != "bob@clinic-b.example konnte nicht zu dieser Unterhaltung hinzugefügt werden: Bei clinic-b.example gibt es diese Person nicht. (Referenz c0ffee)" {
		t.Errorf("notice %s", m)
	}
	alice.expect("bob leaving", and(named("presence"), from(ward7+"/"+bobNickMU), func(n *node) bool { return n.attr("type") == "unavailable" }))
	if _, err := e.a.db.occ().MemberNick(t.Context(), ward7URI, testBob); err == nil {
		t.Error("bob is still a member after his invite failed")
	}

	// A refused message of hers: her client is also told which one, by a stanza error.
	e.publishIn(&event.Envelope{ID: "mimi:n1b", Kind: event.KindNotice, Room: ward7URI, Sender: aliceURI, Timestamp: time.Now(),
		Origin: event.Origin{Network: event.NetworkXMPP, Room: event.NativeRoomID(ward7), Event: "g1"},
		Notice: &event.Notice{Code: event.NoticeRefused, Correlation: "d00d", Native: "g1", Partner: "clinic-b.example"}})
	alice.expect("the room's notice about g1", and(named("message"), from(ward7), hasChild("", "body")))
	fe := alice.expect("the error on g1", and(named("message"), from(ward7), func(n *node) bool { return n.attr("id") == "g1" && n.attr("type") == "error" }))
	if c := errorCondition(fe); c != "not-allowed" {
		t.Errorf("error condition %q: %s", c, fe)
	}

	// A 1:1 chat: the notice comes from the gateway and says which conversation it is about.
	alice.send(`<message to='` + testBobPuppet + `' type='chat' id='d1' xml:lang='de'><body>Hallo Bob</body></message>`)
	dm := e.out.wait(t, "the 1:1 message", func(x *event.Envelope) bool { return x.Origin.Event == "d1" })
	notice("n2", dm.Room, event.Notice{Code: event.NoticeUndelivered, Correlation: "beef01", Partner: "clinic-b.example", Native: "d1"})
	g := alice.expect("the gateway's notice", and(named("message"), from(testUsers), hasChild("", "body")))
	if body := g.child("", "body").Text; !strings.HasPrefix(body, "Zu Ihrer Unterhaltung mit bob@clinic-b.example: Eine Ihrer Nachrichten konnte nicht an clinic-b.example zugestellt werden") ||
		!strings.HasSuffix(body, "(Referenz beef01)") || g.attr("type") != "chat" {
		t.Errorf("notice %s", g)
	}

	// Carol's client names no language (Prosody labels her stanzas with its default, en). A
	// partner's reachability concerns the whole room: everyone present sees it.
	carol := dialClient(t, e.p, "carol", "desk")
	carolNotice := func(id string, n event.Notice) {
		e.publishIn(&event.Envelope{ID: event.EventID("mimi:" + id), Kind: event.KindNotice, Room: ward7URI, Sender: "mimi://localhost/u/carol",
			Timestamp: time.Now(), Origin: event.Origin{Network: event.NetworkMIMI}, Notice: &n})
	}
	carolNotice("n3", event.Notice{Code: event.NoticePartnerUnreachable, Correlation: "77", Partner: "clinic-b.example"})
	u := alice.expect("the room's reachability notice", and(named("message"), from(ward7), hasChild("", "body")))
	if body := u.child("", "body").Text; body != "clinic-b.example cannot be reached at the moment. Your messages are kept and will be delivered when it is back. (reference 77)" {
		t.Errorf("notice %s", u)
	}
	// A notice about a room she is not in reaches carol from the gateway, naming the room.
	carolNotice("n4", event.Notice{Code: event.NoticeRefused, Correlation: "78", Partner: "clinic-b.example"})
	c := carol.expect("carol's notice", and(named("message"), from(testUsers), hasChild("", "body")))
	if body := c.child("", "body").Text; body != "About the group chat "+ward7+": A message you sent was not delivered: clinic-b.example refused it. (reference 78)" {
		t.Errorf("notice %s", c)
	}
	carol.none("the room's notice", and(named("message"), from(ward7)))
	// Redelivered, a notice is not shown twice.
	notice("n1", ward7URI, event.Notice{Code: event.NoticeInviteFailed, Correlation: "c0ffee", Target: testBob, Reason: "userUnknown"})
	alice.send(`<message to='` + ward7 + `' type='groupchat' id='g2'><body>noch da</body></message>`)
	alice.expect("alice's reflected message", and(named("message"), from(ward7+"/Alice"), bodyIs("noch da")))
	alice.none("a second notice", and(named("message"), from(ward7), hasChild("", "body")))
}

// TestNoticeLanguage: the language a user's client last declared, else the configured one.
func TestNoticeLanguage(t *testing.T) {
	a := &Adapter{cfg: Config{Language: "de"}}
	alice, bob := jid.MustParse("alice@localhost/phone"), jid.MustParse("bob@localhost")
	a.langs.Note(alice.Bare().String(), "en-GB")
	a.langs.Note(alice.Bare().String(), "fr") // a language without a catalogue changes nothing
	if got := a.langOf(jid.MustParse("alice@localhost/desk")); got != bridges.English {
		t.Errorf("alice's language %q", got)
	}
	if got := a.langOf(bob); got != bridges.German {
		t.Errorf("bob's language %q, want the configured one", got)
	}
	if got := (&Adapter{}).langOf(bob); got != bridges.English {
		t.Errorf("default language %q", got)
	}
}
