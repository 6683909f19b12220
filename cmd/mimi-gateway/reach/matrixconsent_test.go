package reach

import (
	"fmt"
	"strings"
	"testing"

	mevent "maunium.net/go/mautrix/event"

	gt "github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway/internal/gatewaytest"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
)

// TestConsentForMatrixUser is the other way round, with Klinik A on Matrix in appservice mode
// (BundesMessenger) and its users needing consent: Bob of Amt B (XMPP) finds Alice by her
// address and starts a chat with commands to his gateway's address; Alice is asked in a direct
// chat with the bot (her management room), accepts there with a command, and the chat runs. A
// direct chat Alice opens with the bot answers her commands too.
func TestConsentForMatrixUser(t *testing.T) {
	ca := protocoltest.NewCA(t)
	ka := gt.NewMatrixOrg(t, ca, gt.MatrixOptions{Domain: "klinik-a.example", Mode: gt.ModeAppservice,
		Layers: []string{"mimi:\n  reachability: consent\n  directory:\n    publish: [handle]\n"}})
	ab := gt.NewXMPPOrg(t, ca, gt.XMPPOptions{Domain: "amt-b.example", Users: map[string]string{"bob": "password-bob"}})
	gt.Connect(ka.Gateway, ab.Gateway)
	for _, g := range []*gt.Gateway{ka.Gateway, ab.Gateway} {
		g.Start(t)
	}
	for _, g := range []*gt.Gateway{ka.Gateway, ab.Gateway} {
		g.WaitReady(t, wait)
	}
	alice := ka.User(t, "alice")
	bob := ab.Client(t, "bob", "phone")
	gateway := ab.UsersDomain

	// Alice's own direct chat with the bot answers commands.
	own := matrixRoom{c: alice, bot: ka.Bot}
	own.room = alice.CreateRoom(t, "", true, true, ka.Bot)
	alice.WaitJoined(t, wait, own.room, ka.Bot)
	if got := own.command(t, "help"); !strings.Contains(got, "search") || !strings.Contains(got, "consent") {
		t.Fatalf("help in alice's direct chat with the bot: %q", got)
	}

	if got := xmppCommand(t, bob, gateway, "search alice@klinik-a.example"); !strings.Contains(got, "mimi://klinik-a.example/u/alice") {
		t.Fatalf("bob's search: %q", got)
	}
	// The same search as an ad-hoc command (XEP-0050): listed, a form, the result as a note.
	iq := func(id, inner string) *gt.Stanza {
		t.Helper()
		bob.Send(t, fmt.Sprintf(`<iq type='%s' to='%s' id='%s'>%s</iq>`, map[bool]string{true: "get", false: "set"}[strings.Contains(inner, "disco#items")], gateway, id, inner))
		st := bob.Expect(t, wait, "the answer to iq "+id, func(s *gt.Stanza) bool { return s.XMLName.Local == "iq" && s.Attr("id") == id })
		if st.Attr("type") != "result" {
			t.Fatalf("iq %s: %s", id, st)
		}
		return st
	}
	if items := iq("d1", `<query xmlns='http://jabber.org/protocol/disco#items' node='http://jabber.org/protocol/commands'/>`); !strings.Contains(items.String(), `node="search"`) {
		t.Fatalf("commands listed: %s", items)
	}
	form := iq("c1", `<command xmlns='http://jabber.org/protocol/commands' node='search' action='execute'/>`).Child("http://jabber.org/protocol/commands", "command")
	if form == nil || form.Attr("status") != "executing" || form.Child("jabber:x:data", "x") == nil {
		t.Fatalf("search form: %v", form)
	}
	done := iq("c2", fmt.Sprintf(`<command xmlns='http://jabber.org/protocol/commands' node='search' sessionid='%s'><x xmlns='jabber:x:data' type='submit'><field var='args'><value>alice@klinik-a.example</value></field></x></command>`,
		form.Attr("sessionid"))).Child("http://jabber.org/protocol/commands", "command")
	if done == nil || done.Attr("status") != "completed" || !strings.Contains(done.String(), "mimi://klinik-a.example/u/alice") {
		t.Fatalf("search result: %v", done)
	}
	puppet := ab.Puppet("alice", "klinik-a.example")
	if got := xmppCommand(t, bob, gateway, "start alice@klinik-a.example"); !strings.Contains(got, puppet) {
		t.Fatalf("bob's start: %q", got)
	}
	bob.Expect(t, wait, "bob told to wait for alice", func(s *gt.Stanza) bool {
		return s.Attr("from") == gateway && strings.Contains(s.Body(), "could not be added yet: either there is no such user")
	})

	// Alice is asked in a direct chat with the bot (the one she opened, or a new one).
	asked := alice.WaitEvent(t, wait, "the request for consent", func(e *mevent.Event) bool {
		return e.Sender == ka.Bot && strings.Contains(gt.Body(e), "bob@amt-b.example of a partner organisation would like to write to you")
	})
	if !strings.Contains(gt.Body(asked), "consent allow bob@amt-b.example") {
		t.Fatalf("the request does not say how to accept: %q", gt.Body(asked))
	}
	mgmt := matrixRoom{c: alice, room: asked.RoomID, bot: ka.Bot}
	if mgmt.room != own.room {
		alice.Join(t, mgmt.room)
	}
	if got := mgmt.command(t, "consent allow bob@amt-b.example"); !strings.Contains(got, "may now write to you") {
		t.Fatalf("alice's consent: %q", got)
	}
	bob.Expect(t, wait, "bob told that alice accepted", func(s *gt.Stanza) bool {
		return s.Attr("from") == gateway && strings.Contains(s.Body(), "accepted")
	})

	// The chat runs: Alice is invited into its portal and they talk.
	bob.Send(t, fmt.Sprintf(`<message to='%s' type='chat' id='%s'><body>Guten Tag, Frau Alice</body></message>`, puppet, bob.NewID("m")))
	room := alice.WaitInvite(t, wait, func(e *mevent.Event) bool { return e.RoomID != mgmt.room && e.RoomID != own.room })
	alice.Join(t, room)
	alice.WaitEvent(t, wait, "bob's message", func(e *mevent.Event) bool { return e.RoomID == room && gt.Body(e) == "Guten Tag, Frau Alice" })
	alice.SendText(t, room, "Guten Tag, Herr Bob")
	bob.Expect(t, wait, "alice's answer", func(s *gt.Stanza) bool { return bare(s.Attr("from")) == puppet && s.Body() == "Guten Tag, Herr Bob" })
}
