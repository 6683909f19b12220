package reach

import (
	"context"
	"fmt"
	"strings"
	"testing"

	mevent "maunium.net/go/mautrix/event"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix"
	gt "github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway/internal/gatewaytest"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
)

// TestReceipts: Bob of Amt B (XMPP) and Alice of Klinik A (Matrix, appservice mode) in a 1:1
// chat. Bob's message is reported delivered when Klinik A's homeserver has it (an XEP-0184
// receipt from Alice's address, after the gateway's own one) and read when Alice's client sends
// a read receipt (a chat marker); Alice's message is read when Bob's client sends its displayed
// marker (a read receipt of Bob's ghost), and Bob's XEP-0184 receipt for it reaches Klinik A as
// a delivery report (Matrix shows none: it has no delivery receipts).
func TestReceipts(t *testing.T) {
	ca := protocoltest.NewCA(t)
	ka := gt.NewMatrixOrg(t, ca, gt.MatrixOptions{Domain: "klinik-a.example", Mode: gt.ModeAppservice})
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
	puppet := ab.Puppet("alice", "klinik-a.example")
	ghost := matrix.Ghosts{Prefix: "mimi_", Server: "klinik-a.example"}.UserID(event.NewUserURI("amt-b.example", "bob"))

	// Bob writes first: Alice is invited into a 1:1 portal.
	m1 := bob.NewID("m")
	bob.Send(t, fmt.Sprintf(`<message to='%s' type='chat' id='%s'><body>Hallo Alice</body><markable xmlns='urn:xmpp:chat-markers:0'/><request xmlns='urn:xmpp:receipts'/></message>`, puppet, m1))
	room := alice.WaitInvite(t, wait, nil)
	alice.Join(t, room)
	first := alice.WaitEvent(t, wait, "bob's message", func(e *mevent.Event) bool { return e.RoomID == room && gt.Body(e) == "Hallo Alice" })

	// Delivered: the gateway's own receipt (it has the message) and the one from Klinik A (its
	// homeserver has it).
	received := func() []*gt.Stanza {
		return bob.Received(func(s *gt.Stanza) bool {
			r := s.Child("urn:xmpp:receipts", "received")
			return s.XMLName.Local == "message" && bare(s.Attr("from")) == puppet && r != nil && r.Attr("id") == m1
		})
	}
	gt.Eventually(t, wait, "a delivery receipt for bob's message from klinik-a.example", func() error {
		for _, s := range received() {
			if s.Attr("id") != "rcpt-"+m1 { // not the gateway's own
				return nil
			}
		}
		return fmt.Errorf("receipts so far: %d", len(received()))
	})

	// Read: Alice's read receipt becomes a displayed marker.
	if err := alice.SendReceipt(context.Background(), room, first.ID, mevent.ReceiptTypeRead, nil); err != nil {
		t.Fatal(err)
	}
	bob.Expect(t, wait, "alice's displayed marker on bob's message", func(s *gt.Stanza) bool {
		d := s.Child("urn:xmpp:chat-markers:0", "displayed")
		return bare(s.Attr("from")) == puppet && d != nil && d.Attr("id") == m1
	})

	// The other way: Alice's message; Bob's client confirms delivery and shows it.
	second := alice.SendText(t, room, "Hallo Bob")
	st := bob.Expect(t, wait, "alice's message", func(s *gt.Stanza) bool { return bare(s.Attr("from")) == puppet && s.Body() == "Hallo Bob" })
	m2 := st.Attr("id")
	if m2 == "" {
		t.Fatalf("alice's message has no id: %s", st)
	}
	bob.Send(t, fmt.Sprintf(`<message to='%s' id='%s'><received xmlns='urn:xmpp:receipts' id='%s'/></message>`, puppet, bob.NewID("r"), m2))
	bob.Send(t, fmt.Sprintf(`<message to='%s' type='chat' id='%s'><displayed xmlns='urn:xmpp:chat-markers:0' id='%s'/></message>`, puppet, bob.NewID("d"), m2))
	alice.WaitEvent(t, wait, "bob's read receipt on alice's message", func(e *mevent.Event) bool {
		if e.Type != mevent.EphemeralEventReceipt || e.RoomID != room {
			return false
		}
		rc, ok := e.Content.Parsed.(*mevent.ReceiptEventContent)
		if !ok {
			return false
		}
		_, read := (*rc)[second][mevent.ReceiptTypeRead][ghost]
		return read
	})
	// Alice reports Bob's message from her portal (appservice mode: with the command prefix).
	// Bob started the chat, so its hub is Amt B: Klinik A sends the report there, and Amt B
	// checks its own frank.
	rep := alice.Send(t, room, mevent.EventMessage, &mevent.MessageEventContent{MsgType: mevent.MsgText, Body: "!mimi report spam",
		RelatesTo: &mevent.RelatesTo{InReplyTo: &mevent.InReplyTo{EventID: first.ID}}})
	answer := alice.WaitEvent(t, wait, "the answer to the report", func(e *mevent.Event) bool {
		c, ok := e.Content.Parsed.(*mevent.MessageEventContent)
		return ok && e.RoomID == room && e.Sender == ka.Bot && c.RelatesTo != nil && c.RelatesTo.InReplyTo != nil && c.RelatesTo.InReplyTo.EventID == rep
	})
	if !strings.Contains(gt.Body(answer), "administrators of amt-b.example") {
		t.Fatalf("report answer: %q", gt.Body(answer))
	}
	ab.Gateway.WaitLog(t, wait, "abuse report accepted for the admin")
	if strings.Contains(ka.Gateway.Log(), "delivery report not published") {
		t.Error("a delivery report could not be published")
	}
}
