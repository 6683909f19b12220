package xmpp

import (
	"encoding/xml"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xstanza"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

const (
	ward7     = "ward7@" + testRooms
	ward7URI  = event.RoomURI("mimi://localhost/r/ward7")
	aliceURI  = event.UserURI("mimi://localhost/u/alice")
	nsClient  = "jabber:client"
	bobNickMU = "bob@clinic-b.example"
)

var mimiSeq atomic.Int64

// mimiEnv builds a MIMI → XMPP envelope from a partner user, as the endpoint would publish it.
func mimiEnv(t *testing.T, kind event.Kind, room event.RoomURI, sender event.UserURI, msg *content.Message) (*event.Envelope, content.MessageID) {
	t.Helper()
	data, id, err := msg.EncodeWithID(content.DefaultIDVersion)
	if err != nil {
		t.Fatal(err)
	}
	return &event.Envelope{ID: event.EventID(fmt.Sprintf("mimi:test-%d", mimiSeq.Add(1))), Kind: kind, Room: room, Sender: sender,
		Content: data, MessageID: id[:], Timestamp: time.Now(), Origin: event.Origin{Network: event.NetworkMIMI}}, id
}

func decodeContent(t *testing.T, e *event.Envelope) *content.Message {
	t.Helper()
	m, err := content.Decode(e.Content)
	if err != nil {
		t.Fatalf("decode content of %s: %v", e.ID, err)
	}
	return m
}

func plainText(t *testing.T, m *content.Message) string {
	t.Helper()
	sp, ok := m.Body.Body.(content.SinglePart)
	if !ok {
		t.Fatalf("body is %T, want a single part", m.Body.Body)
	}
	return string(sp.Content)
}

func msgID(t *testing.T, e *event.Envelope) content.MessageID {
	t.Helper()
	var id content.MessageID
	if len(e.MessageID) != len(id) {
		t.Fatalf("envelope %s has no message ID", e.ID)
	}
	copy(id[:], e.MessageID)
	return id
}

func isKind(k event.Kind) func(e *event.Envelope) bool {
	return func(e *event.Envelope) bool { return e.Kind == k }
}

func from(f string) func(n *node) bool {
	return func(n *node) bool { return n.attr("from") == f }
}

func and(ps ...func(n *node) bool) func(n *node) bool {
	return func(n *node) bool {
		for _, p := range ps {
			if !p(n) {
				return false
			}
		}
		return true
	}
}

func named(local string) func(n *node) bool {
	return func(n *node) bool { return n.XMLName.Local == local }
}

func hasChild(space, local string) func(n *node) bool {
	return func(n *node) bool { return n.child(space, local) != nil }
}

func bodyIs(s string) func(n *node) bool {
	return func(n *node) bool { b := n.child("", "body"); return b != nil && b.Text == s }
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// joinRoom joins c to room as nick and waits for the subject, the end of the join sequence.
func joinRoom(t *testing.T, c *client, room, nick string) *node {
	t.Helper()
	c.send(fmt.Sprintf(`<presence to='%s/%s'><x xmlns='http://jabber.org/protocol/muc'><history maxstanzas='5'/></x></presence>`, room, nick))
	self := c.expect("self-presence", and(named("presence"), from(room+"/"+nick), func(n *node) bool {
		x := n.child(xstanza.NSMUCUser, "x")
		if x == nil {
			return false
		}
		for _, s := range x.Nodes {
			if s.XMLName.Local == "status" && s.attr("code") == "110" {
				return true
			}
		}
		return false
	}))
	c.expect("subject", and(named("message"), from(room), hasChild("", "subject")))
	return self
}

func TestMUCEndToEnd(t *testing.T) {
	e := newEnv(t)
	alice := dialClient(t, e.p, "alice", "phone")

	// Joining a room that does not exist creates the MIMI room (the gateway is its hub).
	self := joinRoom(t, alice, ward7, "Alice")
	if self.child(xstanza.NSOccupantID, "occupant-id") == nil {
		t.Errorf("self-presence without occupant-id: %s", self)
	}
	created := e.out.wait(t, "membership join", isKind(event.KindMembership))
	if created.Room != ward7URI || created.Sender != aliceURI || created.Membership.Action != event.MembershipJoin || created.Membership.Target != aliceURI {
		t.Fatalf("join envelope = %+v", created)
	}

	// A groupchat message reaches the bus as a canonical message, then is reflected with stanza-id.
	alice.send(`<message to='` + ward7 + `' type='groupchat' id='m1'><body>Befund liegt vor</body><origin-id xmlns='urn:xmpp:sid:0' id='o-m1'/></message>`)
	msg := e.out.wait(t, "message", isKind(event.KindMessage))
	if msg.Room != ward7URI || msg.Sender != aliceURI || msg.Origin.Network != event.NetworkXMPP || msg.Origin.Event != "o-m1" {
		t.Fatalf("message envelope = %+v", msg)
	}
	c := decodeContent(t, msg)
	if got := plainText(t, c); got != "Befund liegt vor" {
		t.Fatalf("text = %q", got)
	}
	if x, ok := c.Extensions.ExternalMessageID(); !ok || string(x.ID) != "o-m1" || x.URI != "xmpp:alice@localhost" {
		t.Fatalf("extension 4 = %+v, %v", x, ok)
	}
	aliceMsgID := msgID(t, msg)
	refl := alice.expect("reflection", and(named("message"), from(ward7+"/Alice"), bodyIs("Befund liegt vor")))
	sid := refl.child(xstanza.NSSID, "stanza-id")
	if sid == nil || sid.attr("id") != stanzaIDOf(aliceMsgID) || sid.attr("by") != ward7 {
		t.Fatalf("reflection stanza-id: %s", refl)
	}
	if refl.child(xstanza.NSOccupantID, "occupant-id") == nil || refl.attr("type") != "groupchat" {
		t.Fatalf("reflection: %s", refl)
	}

	// A MIMI user's message appears from their nick, after their occupant presence.
	bobB := &content.Builder{SenderURI: string(testBob), RoomURI: string(ward7URI)}
	bm, _ := bobB.Text("Danke, ich schaue es mir an")
	in, bobMsgID := mimiEnv(t, event.KindMessage, ward7URI, testBob, bm)
	e.publishIn(in)
	pres := alice.expect("bob's presence", and(named("presence"), from(ward7+"/"+bobNickMU)))
	if item := pres.child(xstanza.NSMUCUser, "x").child("", "item"); item == nil || item.attr("jid") != testBobPuppet {
		t.Fatalf("bob's presence: %s", pres)
	}
	got := alice.expect("bob's message", and(named("message"), from(ward7+"/"+bobNickMU), bodyIs("Danke, ich schaue es mir an")))
	if s := got.child(xstanza.NSSID, "stanza-id"); s == nil || s.attr("id") != stanzaIDOf(bobMsgID) || got.attr("type") != "groupchat" {
		t.Fatalf("bob's message: %s", got)
	}
	bobSID := stanzaIDOf(bobMsgID)

	// Correction (XEP-0308) of alice's own message → KindEdit replacing the original.
	alice.send(`<message to='` + ward7 + `' type='groupchat' id='m2'><body>Befund liegt vor (korrigiert)</body><replace xmlns='urn:xmpp:message-correct:0' id='m1'/></message>`)
	edit := e.out.wait(t, "edit", isKind(event.KindEdit))
	ec := decodeContent(t, edit)
	if ec.Replaces == nil || *ec.Replaces != aliceMsgID || plainText(t, ec) != "Befund liegt vor (korrigiert)" {
		t.Fatalf("edit content: replaces=%v text=%q", ec.Replaces, plainText(t, ec))
	}
	alice.expect("reflected correction", and(named("message"), from(ward7+"/Alice"), hasChild(xstanza.NSCorrect, "replace")))

	// Reply (XEP-0461) with fallback to bob's message → inReplyTo, quote stripped.
	quote := "> Danke, ich schaue es mir an\n"
	alice.send(fmt.Sprintf(`<message to='%s' type='groupchat' id='m3'><body>%sGut.</body><reply xmlns='urn:xmpp:reply:0' to='%s/%s' id='%s'/><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:reply:0'><body start='0' end='%d'/></fallback></message>`,
		ward7, xmlEscape(quote), ward7, bobNickMU, bobSID, len([]rune(quote))))
	reply := e.out.wait(t, "reply", func(e *event.Envelope) bool { return e.Kind == event.KindMessage && e.Origin.Event == "m3" })
	rc := decodeContent(t, reply)
	if rc.InReplyTo == nil || *rc.InReplyTo != bobMsgID || plainText(t, rc) != "Gut." {
		t.Fatalf("reply: inReplyTo=%v text=%q", rc.InReplyTo, plainText(t, rc))
	}

	// Reactions (XEP-0444): the full set {👍, ❤️} becomes two MIMI reactions; then {❤️} unreacts 👍.
	alice.send(`<message to='` + ward7 + `' type='groupchat' id='r1'><reactions xmlns='urn:xmpp:reactions:0' id='` + bobSID + `'><reaction>👍</reaction><reaction>❤️</reaction></reactions></message>`)
	waitFor(t, 10*time.Second, "two reactions", func() bool { return e.out.count(isKind(event.KindReaction)) == 2 })
	var thumbID content.MessageID
	for _, r := range e.out.all() {
		if r.Kind != event.KindReaction {
			continue
		}
		rm := decodeContent(t, r)
		if !rm.IsReaction() || rm.InReplyTo == nil || *rm.InReplyTo != bobMsgID {
			t.Fatalf("reaction content: %+v", rm)
		}
		if plainText(t, rm) == "👍" {
			thumbID = msgID(t, r)
		}
	}
	alice.send(`<message to='` + ward7 + `' type='groupchat' id='r2'><reactions xmlns='urn:xmpp:reactions:0' id='` + bobSID + `'><reaction>❤️</reaction></reactions></message>`)
	waitFor(t, 10*time.Second, "unreact", func() bool { return e.out.count(isKind(event.KindReaction)) == 3 })
	un := e.out.all()
	var unreact *content.Message
	for _, r := range un {
		if r.Kind == event.KindReaction {
			if m := decodeContent(t, r); m.IsUnreact() {
				unreact = m
			}
		}
	}
	if unreact == nil || *unreact.Replaces != thumbID || *unreact.InReplyTo != bobMsgID {
		t.Fatalf("unreact: %+v", unreact)
	}

	// Chat marker (XEP-0333) displayed → a read receipt.
	alice.send(`<message to='` + ward7 + `' type='groupchat' id='d1'><displayed xmlns='urn:xmpp:chat-markers:0' id='` + bobSID + `'/></message>`)
	rcpt := e.out.wait(t, "read receipt", isKind(event.KindReceipt))
	rep, ok, err := decodeContent(t, rcpt).StatusReport()
	if err != nil || !ok || len(rep) != 1 || rep[0].MessageID != bobMsgID || rep[0].Status != content.StatusRead {
		t.Fatalf("status report: %+v %v %v", rep, ok, err)
	}

	// Retraction (XEP-0424) of alice's message by its stanza-id → KindDelete.
	alice.send(`<message to='` + ward7 + `' type='groupchat' id='x1'><retract xmlns='urn:xmpp:message-retract:1' id='` + stanzaIDOf(aliceMsgID) + `'/><body>retracted</body><fallback xmlns='urn:xmpp:fallback:0' for='urn:xmpp:message-retract:1'/></message>`)
	del := e.out.wait(t, "delete", isKind(event.KindDelete))
	if dc := decodeContent(t, del); !dc.IsDelete() || *dc.Replaces != aliceMsgID {
		t.Fatalf("delete content: %+v", dc)
	}

	// MIMI → XMPP: bob edits, reacts and retracts; the payloads reference the right IDs.
	be, _ := bobB.Edit(bobMsgID, content.PlainText("Danke, erledigt"))
	in, _ = mimiEnv(t, event.KindEdit, ward7URI, testBob, be)
	e.publishIn(in)
	ed := alice.expect("bob's correction", and(named("message"), from(ward7+"/"+bobNickMU), hasChild(xstanza.NSCorrect, "replace")))
	if ed.child(xstanza.NSCorrect, "replace").attr("id") != bobSID || ed.child("", "body").Text != "Danke, erledigt" {
		t.Fatalf("correction: %s", ed)
	}
	br, _ := bobB.Reaction(aliceMsgID, "🎉")
	in, _ = mimiEnv(t, event.KindReaction, ward7URI, testBob, br)
	e.publishIn(in)
	rx := alice.expect("bob's reaction", and(named("message"), from(ward7+"/"+bobNickMU), hasChild(xstanza.NSReactions, "reactions")))
	if r := rx.child(xstanza.NSReactions, "reactions"); r.attr("id") != stanzaIDOf(aliceMsgID) || len(r.Nodes) != 1 || r.Nodes[0].Text != "🎉" {
		t.Fatalf("reactions: %s", rx)
	}
	bd, _ := bobB.Delete(bobMsgID)
	in, _ = mimiEnv(t, event.KindDelete, ward7URI, testBob, bd)
	e.publishIn(in)
	rt := alice.expect("bob's retraction", and(named("message"), from(ward7+"/"+bobNickMU), hasChild(xstanza.NSRetract, "retract")))
	if rt.child(xstanza.NSRetract, "retract").attr("id") != bobSID {
		t.Fatalf("retraction: %s", rt)
	}
	brd, _ := bobB.Status(content.StatusReport{{MessageID: aliceMsgID, Status: content.StatusRead}})
	in, _ = mimiEnv(t, event.KindReceipt, ward7URI, testBob, brd)
	e.publishIn(in)
	mk := alice.expect("bob's displayed marker", and(named("message"), from(ward7+"/"+bobNickMU), hasChild(xstanza.NSMarkers, "displayed")))
	if mk.child(xstanza.NSMarkers, "displayed").attr("id") != stanzaIDOf(aliceMsgID) {
		t.Fatalf("marker: %s", mk)
	}

	// A second local user joining gets the occupants, bob, and the history from the store.
	carol := dialClient(t, e.p, "carol", "desk")
	carol.send(`<presence to='` + ward7 + `/Carol'><x xmlns='http://jabber.org/protocol/muc'/></presence>`)
	carol.expect("alice's presence", and(named("presence"), from(ward7+"/Alice")))
	carol.expect("bob's presence", and(named("presence"), from(ward7+"/"+bobNickMU)))
	carol.expect("self-presence", and(named("presence"), from(ward7+"/Carol")))
	h := carol.expect("history", and(named("message"), from(ward7+"/Alice"), hasChild(xstanza.NSDelay, "delay")))
	if h.child("", "body").Text != "Gut." && !strings.HasSuffix(h.child("", "body").Text, "Gut.") && h.child("", "body").Text != "Befund liegt vor (korrigiert)" {
		t.Fatalf("history: %s", h)
	}
	carol.expect("subject", and(named("message"), from(ward7), hasChild("", "subject")))
	alice.expect("carol joined", and(named("presence"), from(ward7+"/Carol")))
	// Her join is on the bus before the presences go out; the test's consumer may get it later.
	carolURI := event.UserURI("mimi://localhost/u/carol")
	e.out.wait(t, "carol's membership join", func(x *event.Envelope) bool {
		return x.Kind == event.KindMembership && x.Sender == carolURI && x.Membership.Action == event.MembershipJoin
	})
	if n := e.out.count(isKind(event.KindMembership)); n != 2 {
		t.Fatalf("membership envelopes = %d, want 2 (alice created, carol joined)", n)
	}
}

func TestNewestWithin(t *testing.T) {
	for _, c := range []struct {
		sizes []int
		max   int
		want  int
	}{
		{[]int{10, 20, 30}, 1000, 0}, {[]int{10, 20, 30}, 60, 0}, {[]int{10, 20, 30}, 59, 1}, {[]int{10, 20, 30}, 50, 1},
		{[]int{10, 20, 30}, 49, 2}, {[]int{10, 20, 30}, 30, 2}, {[]int{10, 20, 30}, 29, 3}, {nil, 5, 0},
	} {
		if got := xstanza.NewestWithin(c.sizes, c.max); got != c.want {
			t.Errorf("xstanza.NewestWithin(%v, %d) = %d, want %d", c.sizes, c.max, got, c.want)
		}
	}
}

// TestMUCHistoryRequests: each XEP-0045 history request (maxstanzas, maxchars, seconds, since,
// and their combination) gets the history it asks for, also when a client joins again from the
// same resource (slixmpp's "no history" is maxchars='0').
func TestMUCHistoryRequests(t *testing.T) {
	e := newEnv(t)
	alice := dialClient(t, e.p, "alice", "phone")
	joinRoom(t, alice, ward7, "Alice")
	bobB := &content.Builder{SenderURI: string(testBob), RoomURI: string(ward7URI)}
	for _, text := range []string{"eins", "zwei", "drei"} {
		m, _ := bobB.Text(text)
		in, _ := mimiEnv(t, event.KindMessage, ward7URI, testBob, m)
		e.publishIn(in)
		alice.expect("bob's "+text, and(named("message"), from(ward7+"/"+bobNickMU), bodyIs(text)))
	}
	carol := dialClient(t, e.p, "carol", "desk")
	for _, c := range []struct {
		history string
		want    []string
	}{
		{``, []string{"eins", "zwei", "drei"}},
		{`<history maxchars='0'/>`, nil},
		{`<history maxchars='0'/>`, nil}, // again, while the gateway still counts carol as joined
		{`<history maxstanzas='2'/>`, []string{"zwei", "drei"}},
		{`<history maxstanzas='0'/>`, nil},
		{`<history maxchars='1'/>`, nil},
		{`<history maxchars='100000'/>`, []string{"eins", "zwei", "drei"}},
		{`<history maxchars='100000' maxstanzas='1'/>`, []string{"drei"}},
		{`<history seconds='3600'/>`, []string{"eins", "zwei", "drei"}},
		{`<history since='2000-01-01T00:00:00Z'/>`, []string{"eins", "zwei", "drei"}},
		{`<history since='2999-01-01T00:00:00Z'/>`, nil},
		{`<history maxstanzas='many' maxchars='-5'/>`, []string{"eins", "zwei", "drei"}}, // unusable limits are ignored
	} {
		carol.send(`<presence to='` + ward7 + `/Carol'><x xmlns='http://jabber.org/protocol/muc'>` + c.history + `</x></presence>`)
		carol.expect("subject", and(named("message"), from(ward7), hasChild("", "subject")))
		var got []string
		for _, h := range carol.take(and(named("message"), hasChild(xstanza.NSDelay, "delay"))) {
			got = append(got, h.child("", "body").Text)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("history %q: got %q, want %q", c.history, got, c.want)
		}
		carol.take(named("presence"))
	}
}
