package xmpp

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xstanza"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

func isError(id string) func(n *node) bool {
	return func(n *node) bool { return n.attr("type") == "error" && n.attr("id") == id }
}

func errorCondition(n *node) string {
	e := n.child("", "error")
	if e == nil {
		return ""
	}
	for _, c := range e.Nodes {
		if c.XMLName.Space == xstanza.NSStanzas && c.XMLName.Local != "text" {
			return c.XMLName.Local
		}
	}
	return ""
}

// TestHostileStanzas sends malformed payloads inside a valid stream, oversized bodies, wrong
// namespaces, bad timestamps, crafted JID escapes and attempts to act on other people's messages.
// The adapter must refuse or ignore each one, publish nothing for it, and keep working.
func TestHostileStanzas(t *testing.T) {
	e := newEnv(t)
	alice := dialClient(t, e.p, "alice", "phone")
	mallory := dialClient(t, e.p, "mallory", "laptop")

	// Joins with history requests that killed gosrc.io/xmpp's receive loop, and garbage ones.
	alice.send(`<presence to='` + ward7 + `/Alice'><x xmlns='http://jabber.org/protocol/muc'><history since='2024-05-01T10:00:00+00:00' maxstanzas='-7' seconds='x'/></x></presence>`)
	alice.expect("subject", and(named("message"), from(ward7), hasChild("", "subject")))
	mallory.send(`<presence to='` + ward7 + `/Mallory'><x xmlns='http://jabber.org/protocol/muc'><history since='garbage' maxchars='99999999999999999999'/></x></presence>`)
	mallory.expect("subject", and(named("message"), from(ward7), hasChild("", "subject")))
	// Nick already taken.
	mallory.send(`<presence to='` + ward7 + `/Alice' id='nick'><x xmlns='http://jabber.org/protocol/muc'/></presence>`)
	if c := errorCondition(mallory.expect("nick conflict", isError("nick"))); c != "not-acceptable" && c != "conflict" {
		t.Errorf("nick change/conflict: condition %q", c)
	}

	alice.send(`<message to='` + ward7 + `' type='groupchat' id='orig'><body>Original</body></message>`)
	orig := e.out.wait(t, "original", func(x *event.Envelope) bool { return x.Origin.Event == "orig" })
	origSID := stanzaIDOf(msgID(t, orig))
	before := len(e.out.all())

	tests := []struct {
		name   string
		c      *client
		stanza string
		cond   string // expected stanza error condition; "" means ignored silently
	}{
		{"reactions without id", alice, `<message to='%s' type='groupchat' id='h1'><reactions xmlns='urn:xmpp:reactions:0'><reaction>👍</reaction></reactions></message>`, "bad-request"},
		{"reactions to unknown message", alice, `<message to='%s' type='groupchat' id='h2'><reactions xmlns='urn:xmpp:reactions:0' id='nope'><reaction>👍</reaction></reactions></message>`, "item-not-found"},
		{"too many reactions", alice, `<message to='%s' type='groupchat' id='h3'><reactions xmlns='urn:xmpp:reactions:0' id='` + origSID + `'>` + strings.Repeat("<reaction>x</reaction>", 40) + `</reactions></message>`, "policy-violation"},
		{"wrong namespace", alice, `<message to='%s' type='groupchat' id='h4'><reactions xmlns='urn:xmpp:reactions:99' id='` + origSID + `'><reaction>👍</reaction></reactions><retract xmlns='urn:xmpp:message-retract:0' id='orig'/></message>`, ""},
		{"huge body", alice, `<message to='%s' type='groupchat' id='h5'><body>` + strings.Repeat("A", 100<<10) + `</body></message>`, "policy-violation"},
		{"retract someone else's message", mallory, `<message to='%s' type='groupchat' id='h6'><retract xmlns='urn:xmpp:message-retract:1' id='` + origSID + `'/></message>`, "item-not-found"},
		{"correct someone else's message", mallory, `<message to='%s' type='groupchat' id='h7'><body>gefälscht</body><replace xmlns='urn:xmpp:message-correct:0' id='orig'/></message>`, "item-not-found"},
		{"OMEMO", alice, `<message to='%s' type='groupchat' id='h8'><encrypted xmlns='eu.siacs.conversations.axolotl'><header sid='1'/></encrypted><body>I sent you an OMEMO encrypted message</body></message>`, "not-acceptable"},
		{"private message", alice, `<message to='%s/Mallory' type='chat' id='h9'><body>psst</body></message>`, "feature-not-implemented"},
		{"normal message to room", alice, `<message to='%s' type='normal' id='h10'><body>hi</body></message>`, "bad-request"},
		{"deeply nested unknown payload", alice, `<message to='%s' type='groupchat' id='h11'>` + strings.Repeat("<a xmlns='urn:x'>", 200) + strings.Repeat("</a>", 200) + `</message>`, ""},
		{"whitespace body", alice, `<message to='%s' type='groupchat' id='h12'><body>   </body></message>`, ""},
		{"not joined", e.c(t, "carol"), `<message to='%s' type='groupchat' id='h13'><body>hi</body></message>`, "not-acceptable"},
		{"unknown room", alice, `<message to='nosuchroom@` + testRooms + `' type='groupchat' id='h14'><body>hi</body></message>%.0s`, "item-not-found"},
		{"crafted escape to users", alice, `<message to='\5c\40@` + testUsers + `' type='chat' id='h15'><body>hi</body></message>%.0s`, "item-not-found"},
		{"opaque puppet not in the database", alice, `<message to='x-aaaaaaaaaaaaaaaaaaaa@` + testUsers + `' type='chat' id='h16'><body>hi</body></message>%.0s`, "item-not-found"},
		{"puppet of our own provider", alice, `<message to='carol\40localhost@` + testUsers + `' type='chat' id='h17'><body>hi</body></message>%.0s`, "item-not-found"},
		{"empty user part of puppet", alice, `<message to='\40clinic-b.example@` + testUsers + `' type='chat' id='h18'><body>hi</body></message>%.0s`, "item-not-found"},
		{"non-canonical escape", alice, `<message to='bob\40clinic-b.example\20@` + testUsers + `' type='chat' id='h19'><body>hi</body></message>%.0s`, "item-not-found"},
		{"gateway JID itself", alice, `<message to='` + testUsers + `' type='chat' id='h20'><body>hi</body></message>%.0s`, ""}, // answered below
		{"gateway JID, a command too long", alice, `<message to='` + testUsers + `' type='chat' id='h20b'><body>search ` + strings.Repeat("x", 2000) + `</body></message>%.0s`, ""},
		{"unknown IQ", alice, `<iq to='` + testRooms + `' type='get' id='h21'><query xmlns='jabber:iq:version'/></iq>%.0s`, "service-unavailable"},
		{"IQ set to a room", alice, `<iq to='%s' type='set' id='h22'><query xmlns='http://jabber.org/protocol/muc#admin'><item nick='Mallory' role='none'/></query></iq>`, "service-unavailable"},
		{"self-ping by a non-occupant", e.c(t, "carol"), `<iq to='%s/Alice' type='get' id='h23'><ping xmlns='urn:xmpp:ping'/></iq>`, "not-acceptable"},
	}
	for _, tc := range tests {
		id := ""
		if i := strings.Index(tc.stanza, "id='"); i >= 0 {
			id = tc.stanza[i+4 : i+4+strings.Index(tc.stanza[i+4:], "'")]
		}
		tc.c.send(fmt.Sprintf(tc.stanza, ward7))
		if tc.cond != "" {
			got := tc.c.expect(tc.name+" error", isError(id))
			if c := errorCondition(got); c != tc.cond {
				t.Errorf("%s: error condition %q, want %q: %s", tc.name, c, tc.cond, got)
			}
		}
	}

	// A local user's message to the gateway's own address is a command (commands.go): anything
	// it does not understand is answered with how to get help, never relayed.
	for range 2 {
		alice.expect("the gateway's answer", func(n *node) bool {
			b := n.child("", "body")
			return n.XMLName.Local == "message" && n.attr("from") == testUsers && n.attr("type") == "chat" && b != nil && strings.Contains(b.Text, "help")
		})
	}

	// Bad timestamps and broken fallback ranges do not stop a message: it is bridged with the
	// arrival time and its body unchanged.
	alice.send(`<message to='` + ward7 + `' type='groupchat' id='ts1'><body>Zeit</body><delay xmlns='urn:xmpp:delay' stamp='9999-99-99T99:99:99Z'/></message>`)
	alice.send(`<message to='` + ward7 + `' type='groupchat' id='fb1'><body>&gt; x
Antwort</body><reply xmlns='urn:xmpp:reply:0' id='` + origSID + `'/><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:reply:0'><body start='-5' end='99999'/></fallback></message>`)
	alice.send(`<message to='` + ward7 + `' type='groupchat' id='long-ref'><body>Lang</body><reply xmlns='urn:xmpp:reply:0' id='` + strings.Repeat("r", 5000) + `'/></message>`)
	alice.send(`<message to='` + ward7 + `' type='groupchat' id='last'><body>noch da</body></message>`)
	last := e.out.wait(t, "message after the hostile ones", func(x *event.Envelope) bool { return x.Origin.Event == "last" })
	if last.Kind != event.KindMessage {
		t.Fatalf("last = %+v", last)
	}
	for _, x := range e.out.all()[before:] {
		switch x.Origin.Event {
		case "ts1":
			if x.Timestamp.Year() > 3000 {
				t.Errorf("bad delay stamp used: %v", x.Timestamp)
			}
		case "fb1":
			if got := plainText(t, decodeContent(t, x)); got != "> x\nAntwort" {
				t.Errorf("broken fallback range changed the body to %q", got)
			}
		case "long-ref":
			if decodeContent(t, x).InReplyTo != nil {
				t.Errorf("over-long reply id resolved")
			}
		case "ts1x":
		case "last":
		default:
			t.Errorf("hostile stanza published: kind %s event %q", x.Kind, x.Origin.Event)
		}
	}
	if u, r := e.a.Connects(); u != 1 || r != 1 {
		t.Fatalf("components reconnected (%d, %d times): a hostile stanza broke the stream", u, r)
	}
	if err := e.a.Ready(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// c dials another client for one test case.
func (e *env) c(t *testing.T, user string) *client {
	if e.extra == nil {
		e.extra = map[string]*client{}
	}
	if c, ok := e.extra[user]; ok {
		return c
	}
	c := dialClient(t, e.p, user, "extra")
	e.extra[user] = c
	return c
}

func TestDecodeStanzaLimits(t *testing.T) {
	big := `<message from='a@b/c' to='d@e'><body>` + strings.Repeat("x", xstanza.MaxStanzaBytes+1) + `</body></message>`
	var m xstanza.InMessage
	err := decodeFromString(big, &m)
	if !errors.Is(err, xstanza.ErrTooLarge) {
		t.Fatalf("oversized stanza: err = %v, want xstanza.ErrTooLarge", err)
	}
	manyAttrs := `<message from='a@b/c' to='d@e'` + strings.Repeat(" x='"+strings.Repeat("y", 1000)+"'", 1) + `>` + strings.Repeat(`<z a='`+strings.Repeat("q", 1000)+`'/>`, 600) + `</message>`
	if err := decodeFromString(manyAttrs, &m); !errors.Is(err, xstanza.ErrTooLarge) {
		t.Fatalf("attribute flood: err = %v, want xstanza.ErrTooLarge", err)
	}
	if err := decodeFromString(`<message><body>ok</body></message>`, &m); err != nil {
		t.Fatalf("small stanza: %v", err)
	}
}
