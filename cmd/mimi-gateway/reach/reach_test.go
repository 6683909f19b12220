// Package reach tests, with the real binary on Dendrite and Prosody, how people of one
// organisation find and reach people of another: search, start, consent and reachability.
package reach

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	gt "github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway/internal/gatewaytest"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
)

func TestMain(m *testing.M) { gt.Main(m) }

// wait bounds every step on a loaded machine.
const wait = 3 * time.Minute

// amtBDirectory is Amt B's published directory: users need consent by default; bob and carla
// are listed with their name and e-mail address.
const amtBDirectory = `mimi:
  reachability: consent
  directory:
    publish: [handle, email, partialName]
    entries:
      - {user: bob, name: Bob Beispiel, email: bob.beispiel@amt-b.example}
      - {user: carla, name: Carla Clerk, email: carla.clerk@amt-b.example}
`

// matrixRoom is a Matrix user's room with Klinik A's functional account.
type matrixRoom struct {
	c    *gt.MatrixClient
	room id.RoomID
	bot  id.UserID
}

// command sends text and returns the functional account's answer (a notice in reply to it).
func (r matrixRoom) command(t *testing.T, text string) string {
	t.Helper()
	return r.answer(t, text, r.c.SendText(t, r.room, text))
}

// replyCommand sends text as an answer to the event to and returns the functional account's
// answer.
func (r matrixRoom) replyCommand(t *testing.T, text string, to id.EventID) string {
	t.Helper()
	ev := r.c.Send(t, r.room, mevent.EventMessage, &mevent.MessageEventContent{MsgType: mevent.MsgText, Body: text,
		RelatesTo: &mevent.RelatesTo{InReplyTo: &mevent.InReplyTo{EventID: to}}})
	return r.answer(t, text, ev)
}

func (r matrixRoom) answer(t *testing.T, text string, ev id.EventID) string {
	t.Helper()
	e := r.c.WaitEvent(t, wait, "the answer to "+text, func(e *mevent.Event) bool {
		c, ok := e.Content.Parsed.(*mevent.MessageEventContent)
		return ok && e.RoomID == r.room && e.Sender == r.bot && c.MsgType == mevent.MsgNotice &&
			c.RelatesTo != nil && c.RelatesTo.InReplyTo != nil && c.RelatesTo.InReplyTo.EventID == ev
	})
	return gt.Body(e)
}

// notice waits for a notice of the functional account in room containing all of want.
func notice(t *testing.T, c *gt.MatrixClient, bot id.UserID, room id.RoomID, want ...string) string {
	t.Helper()
	e := c.WaitEvent(t, wait, fmt.Sprintf("a notice in %s with %q", room, want), func(e *mevent.Event) bool {
		m, ok := e.Content.Parsed.(*mevent.MessageEventContent)
		if !ok || e.RoomID != room || e.Sender != bot || m.MsgType != mevent.MsgNotice {
			return false
		}
		for _, w := range want {
			if !strings.Contains(m.Body, w) {
				return false
			}
		}
		return true
	})
	return gt.Body(e)
}

// xmppCommand sends text to the gateway's address and returns its answer.
func xmppCommand(t *testing.T, c *gt.XMPPClient, gateway, text string) string {
	t.Helper()
	mid := c.NewID("cmd")
	c.Send(t, fmt.Sprintf(`<message to='%s' type='chat' id='%s'><body>%s</body></message>`, gateway, mid, gt.XMLEscape(text)))
	st := c.Expect(t, wait, "the gateway's answer to "+text, func(s *gt.Stanza) bool {
		return s.XMLName.Local == "message" && s.Attr("from") == gateway && s.Attr("type") == "chat" && s.Body() != "" &&
			!strings.Contains(s.Body(), "would like to write to you")
	})
	return st.Body()
}

var referenceRE = regexp.MustCompile(`\(reference [0-9a-f]+\)`)

// TestFindAndReach: Alice of Klinik A (TI-Messenger: Matrix, gateway in client mode) finds Bob of
// Amt B (XMPP) by his published e-mail address and by his handle, starts a conversation with
// him; Amt B's default "consent" makes it wait until Bob accepts (a message from his gateway, his
// command), then they talk. Bob's revoke stops new conversations. Carla, who reaches nobody
// outside, is not found and not reachable, with the very answers given for a user who does not
// exist.
func TestFindAndReach(t *testing.T) {
	ca := protocoltest.NewCA(t)
	ka := gt.NewMatrixOrg(t, ca, gt.MatrixOptions{Domain: "klinik-a.example", Mode: gt.ModeClient})
	ab := gt.NewXMPPOrg(t, ca, gt.XMPPOptions{Domain: "amt-b.example",
		Users:  map[string]string{"bob": "password-bob", "carla": "password-carla"},
		Layers: []string{amtBDirectory}})
	gt.Connect(ka.Gateway, ab.Gateway)
	for _, g := range []*gt.Gateway{ka.Gateway, ab.Gateway} {
		g.Start(t)
	}
	for _, g := range []*gt.Gateway{ka.Gateway, ab.Gateway} {
		g.WaitReady(t, wait)
	}
	gateway := ab.UsersDomain // the gateway's own address on Amt B's XMPP server
	bob, carla := ab.Client(t, "bob", "phone"), ab.Client(t, "carla", "phone")

	// Carla chooses to be reachable by nobody outside Amt B.
	if got := xmppCommand(t, carla, gateway, "reachability nobody"); !strings.Contains(got, "nobody") {
		t.Fatalf("carla's reachability answer: %q", got)
	}

	alice := ka.User(t, "alice")
	mgmt := matrixRoom{c: alice, bot: ka.Bot}
	mgmt.room = alice.CreateRoom(t, "MIMI", true, true, ka.Bot)
	alice.WaitJoined(t, wait, mgmt.room, ka.Bot)

	// Found by the published e-mail address and by handle; only published fields are shown.
	for _, q := range []string{"bob.beispiel@amt-b.example", "bob@amt-b.example", "Bob Beisp"} {
		got := mgmt.command(t, "search "+q)
		if !strings.Contains(got, "mimi://amt-b.example/u/bob") || !strings.Contains(got, "Bob Beispiel") {
			t.Fatalf("search %s: %q", q, got)
		}
	}
	// Carla and a user who does not exist: the same answer (nobody found).
	same := func(a, b, qa, qb string) {
		t.Helper()
		if strings.ReplaceAll(a, qa, "Q") != strings.ReplaceAll(b, qb, "Q") {
			t.Fatalf("answers differ: %q (for %s) and %q (for %s)", a, qa, b, qb)
		}
	}
	for _, q := range [][2]string{{"carla.clerk@amt-b.example", "nemo.nobody@amt-b.example"}, {"carla@amt-b.example", "nemo@amt-b.example"}, {"Carla Clerk", "Nemo Nobody"}} {
		c, n := mgmt.command(t, "search "+q[0]), mgmt.command(t, "search "+q[1])
		if !strings.Contains(c, "Nobody found") || strings.Contains(c, "mimi://") {
			t.Fatalf("search %s: %q", q[0], c)
		}
		same(c, n, q[0], q[1])
	}

	// start: a new room; Bob has not accepted Alice, so the invite waits.
	if got := mgmt.command(t, "start bob.beispiel@amt-b.example"); !strings.Contains(got, "bob") {
		t.Fatalf("start: %q", got)
	}
	dm := alice.WaitInvite(t, wait, func(e *mevent.Event) bool { return e.Sender == ka.Bot })
	alice.Join(t, dm)
	notice(t, alice, ka.Bot, dm, "bob (amt-b.example)", "either there is no such user, or they have not yet agreed")

	// Bob is asked by his gateway, and accepts.
	req := bob.Expect(t, wait, "the request for consent", func(s *gt.Stanza) bool {
		return s.XMLName.Local == "message" && s.Attr("from") == gateway && strings.Contains(s.Body(), "alice@klinik-a.example")
	})
	if !strings.Contains(req.Body(), "consent allow alice@klinik-a.example") {
		t.Fatalf("the request for consent does not say how to accept: %q", req.Body())
	}
	if got := xmppCommand(t, bob, gateway, "consent allow alice@klinik-a.example"); !strings.Contains(got, "may now write to you") {
		t.Fatalf("bob's consent answer: %q", got)
	}
	notice(t, alice, ka.Bot, dm, "bob (amt-b.example) accepted")

	// The conversation runs both ways.
	alice.SendText(t, dm, "Guten Tag, Herr Beispiel")
	puppet := ab.Puppet("alice", "klinik-a.example")
	first := bob.Expect(t, wait, "alice's first message", func(s *gt.Stanza) bool {
		x := s.Child("http://jabber.org/protocol/muc#user", "x")
		return s.XMLName.Local == "message" && ((x != nil && x.Child("", "invite") != nil) || s.Body() == "Guten Tag, Herr Beispiel")
	})
	to, typ := puppet, "chat"
	if first.Body() != "Guten Tag, Herr Beispiel" { // an invitation into a group chat
		to, typ = bare(first.Attr("from")), "groupchat"
		bob.Send(t, fmt.Sprintf(`<presence to='%s/bob'><x xmlns='http://jabber.org/protocol/muc'/></presence>`, to))
		bob.Expect(t, wait, "alice's first message in "+to, func(s *gt.Stanza) bool { return s.Body() == "Guten Tag, Herr Beispiel" })
	}
	bob.Send(t, fmt.Sprintf(`<message to='%s' type='%s' id='%s'><body>Guten Tag, Frau Alice</body></message>`, to, typ, bob.NewID("m")))
	answer := alice.WaitEvent(t, wait, "bob's answer", func(e *mevent.Event) bool {
		return e.RoomID == dm && strings.Contains(gt.Body(e), "Guten Tag, Frau Alice")
	})

	// Alice reports Bob's message: her gateway, the room's hub, checks its frank and records
	// the report for its admin.
	dmRoom := matrixRoom{c: alice, room: dm, bot: ka.Bot}
	if got := dmRoom.replyCommand(t, "report unfreundlich", answer.ID); !strings.Contains(got, "administrators of klinik-a.example") {
		t.Fatalf("report: %q", got)
	}
	ka.Gateway.WaitLog(t, wait, "abuse report accepted for the admin")
	// Klinik A's admin lists it (the console's abuse section, over the admin socket).
	if out := ka.Gateway.Command(t, "admin", "reports"); !strings.Contains(out, "unfreundlich") ||
		!strings.Contains(out, "mimi://amt-b.example/u/bob: Guten Tag, Frau Alice") || !strings.Contains(out, "mimi://klinik-a.example/u/alice") {
		t.Fatalf("admin reports:\n%s", out)
	}

	// consent list shows whom Bob accepted.
	if got := xmppCommand(t, bob, gateway, "consent list"); !strings.Contains(got, "alice@klinik-a.example") {
		t.Fatalf("bob's consent list: %q", got)
	}

	// Bob revokes: a new start does not reach him.
	if got := xmppCommand(t, bob, gateway, "consent revoke alice@klinik-a.example"); !strings.Contains(got, "no longer") {
		t.Fatalf("bob's revoke answer: %q", got)
	}
	gt.Eventually(t, wait, "alice's gateway learns of the revoke", func() error {
		if !strings.Contains(ka.Gateway.Log(), `"operation":"revoke"`) && !strings.Contains(ka.Gateway.Log(), "operation=revoke") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	mgmt.command(t, "start mimi://amt-b.example/u/bob")
	dm2 := alice.WaitInvite(t, wait, func(e *mevent.Event) bool { return e.Sender == ka.Bot && e.RoomID != dm })
	alice.Join(t, dm2)
	notice(t, alice, ka.Bot, dm2, "bob (amt-b.example)", "either amt-b.example has no such user, or they have not agreed")

	// Carla and a user who does not exist are not reachable, with the same notice.
	mgmt.command(t, "start mimi://amt-b.example/u/carla")
	dmC := alice.WaitInvite(t, wait, func(e *mevent.Event) bool { return e.Sender == ka.Bot && e.RoomID != dm && e.RoomID != dm2 })
	alice.Join(t, dmC)
	nc := notice(t, alice, ka.Bot, dmC, "carla (amt-b.example)", "either there is no such user, or they have not yet agreed")
	mgmt.command(t, "start mimi://amt-b.example/u/nemo")
	dmN := alice.WaitInvite(t, wait, func(e *mevent.Event) bool {
		return e.Sender == ka.Bot && e.RoomID != dm && e.RoomID != dm2 && e.RoomID != dmC
	})
	alice.Join(t, dmN)
	nn := notice(t, alice, ka.Bot, dmN, "nemo (amt-b.example)", "either there is no such user, or they have not yet agreed")
	same(referenceRE.ReplaceAllString(nc, ""), referenceRE.ReplaceAllString(nn, ""), "carla", "nemo")

	// Nobody at Amt B was asked or invited on Alice's behalf after the revoke: Carla never, Bob
	// not again.
	for _, c := range []*gt.XMPPClient{bob, carla} {
		asked := c.Received(func(s *gt.Stanza) bool {
			return s.XMLName.Local == "message" && s.Attr("from") == gateway && strings.Contains(s.Body(), "would like to write to you")
		})
		if want := map[*gt.XMPPClient]int{bob: 1, carla: 0}[c]; len(asked) != want {
			t.Errorf("%s was asked %d times for consent, want %d", c.Bare, len(asked), want)
		}
	}
}

func bare(j string) string {
	if i := strings.IndexByte(j, '/'); i >= 0 {
		return j[:i]
	}
	return j
}
