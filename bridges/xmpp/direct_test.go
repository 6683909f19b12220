package xmpp

import (
	"strconv"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/portals"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xstanza"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

func TestDirectChat(t *testing.T) {
	e := newEnv(t)
	alice := dialClient(t, e.p, "alice", "phone")

	// Disco on a puppet lists the XEPs the gateway speaks.
	alice.send(`<iq type='get' id='disco1' to='` + testBobPuppet + `'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`)
	info := alice.expect("disco result", and(named("iq"), func(n *node) bool { return n.attr("id") == "disco1" }))
	if info.attr("type") != "result" || info.attr("from") != testBobPuppet {
		t.Fatalf("disco: %s", info)
	}
	feats := map[string]bool{}
	for _, f := range info.child(xstanza.NSDiscoInfo, "query").Nodes {
		feats[f.attr("var")] = true
	}
	for _, ns := range []string{xstanza.NSReceipts, xstanza.NSMarkers, xstanza.NSReactions, xstanza.NSReply, xstanza.NSCorrect, xstanza.NSRetract, xstanza.NSOOB} {
		if !feats[ns] {
			t.Errorf("disco#info lacks %s", ns)
		}
	}

	// A first message to a MIMI user creates the 1:1 room (alice invites bob), then the
	// message; the receipt comes only after the message is on the bus.
	alice.send(`<message to='` + testBobPuppet + `' type='chat' id='c1'><body>Hallo Bob</body><request xmlns='urn:xmpp:receipts'/><markable xmlns='urn:xmpp:chat-markers:0'/><active xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	alice.expect("receipt", and(named("message"), from(testBobPuppet), func(n *node) bool {
		r := n.child(xstanza.NSReceipts, "received")
		return r != nil && r.attr("id") == "c1"
	}))
	if e.pub.onBus.count(func(x *event.Envelope) bool { return x.Kind == event.KindMessage && x.Origin.Event == "c1" }) != 1 {
		t.Fatal("receipt sent before the message was on the bus")
	}
	msg := e.out.wait(t, "message", isKind(event.KindMessage))
	room := msg.Room
	if room.Domain() != testDomain || msg.Sender != aliceURI || plainText(t, decodeContent(t, msg)) != "Hallo Bob" {
		t.Fatalf("1:1 message = %+v", msg)
	}
	// The room is created by alice's invite of bob: the provider creates a room on its first
	// invite, with the inviter as a member, so nothing may come before it and no join is needed.
	var members []*event.Envelope
	for _, m := range e.out.all() {
		if m.Kind == event.KindMembership && m.Room == room {
			members = append(members, m)
		}
	}
	if len(members) != 1 || members[0].Sender != aliceURI || *members[0].Membership != (event.Membership{Action: event.MembershipInvite, Target: testBob, Direct: true}) {
		t.Fatalf("1:1 room creation published %v, want only alice's invite of bob", members)
	}
	aliceMsg := msgID(t, msg)

	// The room is reused for the next message; chat states alone are dropped politely.
	alice.send(`<message to='` + testBobPuppet + `' type='chat' id='c2'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`)
	alice.send(`<message to='` + testBobPuppet + `' type='chat' id='c3'><body>Noch da?</body></message>`)
	m3 := e.out.wait(t, "second message", func(x *event.Envelope) bool { return x.Kind == event.KindMessage && x.Origin.Event == "c3" })
	if m3.Room != room {
		t.Fatalf("second message in room %s, want %s", m3.Room, room)
	}
	alice.none("error for a chat state", and(named("message"), func(n *node) bool { return n.attr("type") == "error" }))

	// MIMI → XMPP: bob's message comes from his puppet, markable, asking for a receipt.
	bobB := &content.Builder{SenderURI: string(testBob), RoomURI: string(room)}
	bm, _ := bobB.Text("Ja, bin da")
	in, bobMsg := mimiEnv(t, event.KindMessage, room, testBob, bm)
	e.publishIn(in)
	got := alice.expect("bob's message", and(named("message"), from(testBobPuppet), bodyIs("Ja, bin da")))
	if got.attr("type") != "chat" || got.child(xstanza.NSMarkers, "markable") == nil || got.child(xstanza.NSReceipts, "request") == nil || got.attr("id") != stanzaIDOf(bobMsg) {
		t.Fatalf("bob's message: %s", got)
	}

	// Alice's receipt and displayed marker become delivery and read reports.
	alice.send(`<message to='` + testBobPuppet + `' id='rc1'><received xmlns='urn:xmpp:receipts' id='` + got.attr("id") + `'/></message>`)
	alice.send(`<message to='` + testBobPuppet + `' type='chat' id='dp1'><displayed xmlns='urn:xmpp:chat-markers:0' id='` + got.attr("id") + `'/></message>`)
	waitFor(t, 10*e2eTimeoutScale, "two receipts", func() bool { return e.out.count(isKind(event.KindReceipt)) == 2 })
	statuses := map[content.Status]bool{}
	for _, r := range e.out.all() {
		if r.Kind != event.KindReceipt {
			continue
		}
		rep, ok, err := decodeContent(t, r).StatusReport()
		if err != nil || !ok || len(rep) != 1 || rep[0].MessageID != bobMsg {
			t.Fatalf("receipt: %+v %v %v", rep, ok, err)
		}
		statuses[rep[0].Status] = true
	}
	if !statuses[content.StatusDelivered] || !statuses[content.StatusRead] {
		t.Fatalf("statuses = %v", statuses)
	}

	// Reply, correction, reaction and retraction in the 1:1 chat.
	alice.send(`<message to='` + testBobPuppet + `' type='chat' id='c4'><body>Gut</body><reply xmlns='urn:xmpp:reply:0' id='` + got.attr("id") + `'/></message>`)
	rp := e.out.wait(t, "reply", func(x *event.Envelope) bool { return x.Origin.Event == "c4" })
	if c := decodeContent(t, rp); c.InReplyTo == nil || *c.InReplyTo != bobMsg {
		t.Fatalf("reply: %+v", c)
	}
	alice.send(`<message to='` + testBobPuppet + `' type='chat' id='c5'><body>Hallo, Bob!</body><replace xmlns='urn:xmpp:message-correct:0' id='c1'/></message>`)
	ed := e.out.wait(t, "edit", isKind(event.KindEdit))
	if c := decodeContent(t, ed); *c.Replaces != aliceMsg || plainText(t, c) != "Hallo, Bob!" {
		t.Fatalf("edit: %+v", c)
	}
	alice.send(`<message to='` + testBobPuppet + `' type='chat' id='c6'><reactions xmlns='urn:xmpp:reactions:0' id='` + got.attr("id") + `'><reaction>👍</reaction></reactions></message>`)
	rx := e.out.wait(t, "reaction", isKind(event.KindReaction))
	if c := decodeContent(t, rx); !c.IsReaction() || *c.InReplyTo != bobMsg {
		t.Fatalf("reaction: %+v", c)
	}
	alice.send(`<message to='` + testBobPuppet + `' type='chat' id='c7'><retract xmlns='urn:xmpp:message-retract:1' id='c3'/></message>`)
	del := e.out.wait(t, "delete", isKind(event.KindDelete))
	if c := decodeContent(t, del); !c.IsDelete() || *c.Replaces != msgID(t, m3) {
		t.Fatalf("delete: %+v", c)
	}

	// Bob's reaction, correction, retraction and read marker arrive with the right XEP payloads.
	br, _ := bobB.Reaction(aliceMsg, "❤️")
	in, _ = mimiEnv(t, event.KindReaction, room, testBob, br)
	e.publishIn(in)
	r := alice.expect("bob's reaction", and(from(testBobPuppet), hasChild(xstanza.NSReactions, "reactions")))
	if x := r.child(xstanza.NSReactions, "reactions"); x.attr("id") != "c1" || len(x.Nodes) != 1 || x.Nodes[0].Text != "❤️" {
		t.Fatalf("reactions: %s", r)
	}
	bEdit, _ := bobB.Edit(bobMsg, content.PlainText("Ja, bin noch da"))
	in, _ = mimiEnv(t, event.KindEdit, room, testBob, bEdit)
	e.publishIn(in)
	c := alice.expect("bob's correction", and(from(testBobPuppet), hasChild(xstanza.NSCorrect, "replace")))
	if c.child(xstanza.NSCorrect, "replace").attr("id") != stanzaIDOf(bobMsg) || c.child("", "body").Text != "Ja, bin noch da" {
		t.Fatalf("correction: %s", c)
	}
	bRead, _ := bobB.Status(content.StatusReport{{MessageID: aliceMsg, Status: content.StatusRead}, {MessageID: msgID(t, m3), Status: content.StatusDelivered}})
	in, _ = mimiEnv(t, event.KindReceipt, room, testBob, bRead)
	e.publishIn(in)
	alice.expect("bob's displayed", and(from(testBobPuppet), func(n *node) bool {
		d := n.child(xstanza.NSMarkers, "displayed")
		return d != nil && d.attr("id") == "c1"
	}))
	alice.expect("bob's receipt", and(from(testBobPuppet), func(n *node) bool {
		d := n.child(xstanza.NSReceipts, "received")
		return d != nil && d.attr("id") == "c3"
	}))
	bDel, _ := bobB.Delete(bobMsg)
	in, _ = mimiEnv(t, event.KindDelete, room, testBob, bDel)
	e.publishIn(in)
	rt := alice.expect("bob's retraction", and(from(testBobPuppet), hasChild(xstanza.NSRetract, "retract")))
	if rt.child(xstanza.NSRetract, "retract").attr("id") != stanzaIDOf(bobMsg) {
		t.Fatalf("retraction: %s", rt)
	}

	// Media: an OOB link to a host that is not an upload host stays a link in the text (upload
	// hosts: upload_test.go), and an unencrypted ExternalPart becomes an OOB link.
	url := "https://upload.localhost/abc/scan.png"
	alice.send(`<message to='` + testBobPuppet + `' type='chat' id='c8'><body>` + url + `</body><x xmlns='jabber:x:oob'><url>` + url + `</url></x></message>`)
	med := e.out.wait(t, "media", func(x *event.Envelope) bool { return x.Origin.Event == "c8" })
	if text := plainText(t, decodeContent(t, med)); text != url {
		t.Fatalf("link content: %+v", decodeContent(t, med).Body)
	}
	att, _ := bobB.Attachment(content.ExternalPart{ContentType: "application/pdf", URL: "https://files.clinic-b.example/befund.pdf", Filename: "befund.pdf"}, content.DispAttachment)
	in, _ = mimiEnv(t, event.KindMessage, room, testBob, att)
	e.publishIn(in)
	o := alice.expect("bob's attachment", and(from(testBobPuppet), hasChild(xstanza.NSOOB, "x")))
	if o.child(xstanza.NSOOB, "x").child("", "url").Text != "https://files.clinic-b.example/befund.pdf" || o.child("", "body").Text != "https://files.clinic-b.example/befund.pdf" {
		t.Fatalf("oob: %s", o)
	}
}

// e2eTimeoutScale scales waits in the 1:1 test (a time.Duration multiplier of one second).
const e2eTimeoutScale = 1e9

// TestPartnerDirectChat: a 1:1 that a partner's user starts (a Direct portal request from the
// peer) reaches alice as a chat from the peer's puppet, not as a MUC invitation, and her answer
// to the puppet goes into that same MIMI room. A second 1:1 the peer starts is the same chat: her
// messages go to the room bob wrote in last, a correction to the room of the message it corrects.
func TestPartnerDirectChat(t *testing.T) {
	e := newEnv(t)
	alice := dialClient(t, e.p, "alice", "phone")
	room := event.RoomURI("mimi://hub.example/r/dm-from-bob")
	pr := &event.Envelope{ID: "mimi:" + event.EventID(t.Name()), Kind: event.KindPortalRequest, Room: room, Sender: testBob,
		Timestamp: time.Now(), Origin: event.Origin{Network: event.NetworkMIMI},
		Membership: &event.Membership{Action: event.MembershipInvite, Target: aliceURI, Direct: true}}
	e.publishIn(pr)
	waitFor(t, 10*e2eTimeoutScale, "the 1:1 portal", func() bool {
		r, err := e.a.db.portals().Room(t.Context(), room)
		return err == nil && r.Kind == portals.KindDM
	})

	bm, _ := (&content.Builder{SenderURI: string(testBob), RoomURI: string(room)}).Text("Hallo Alice")
	in, _ := mimiEnv(t, event.KindMessage, room, testBob, bm)
	e.publishIn(in)
	got := alice.expect("bob's first message", and(named("message"), from(testBobPuppet), bodyIs("Hallo Alice")))
	if got.attr("type") != "chat" {
		t.Fatalf("bob's first message: %s", got)
	}
	alice.none("a MUC invitation", and(named("message"), hasChild(xstanza.NSMUCUser, "x")))

	alice.send(`<message to='` + testBobPuppet + `' type='chat' id='d1'><body>Hallo Bob</body></message>`)
	ans := e.out.wait(t, "alice's answer", func(x *event.Envelope) bool { return x.Kind == event.KindMessage && x.Origin.Event == "d1" })
	if ans.Room != room || ans.Sender != aliceURI {
		t.Fatalf("alice's answer in %s from %s, want %s from %s", ans.Room, ans.Sender, room, aliceURI)
	}

	// Bob starts a second 1:1 with alice: a JID pair is one chat. His message in the new room
	// comes from his puppet, and alice's answer goes to the newer room; when he writes in the
	// first room again, her answer goes there, to the room he is writing in.
	room2 := event.RoomURI("mimi://hub.example/r/dm-from-bob-2")
	pr2 := *pr
	pr2.ID, pr2.Room = pr.ID+"-2", room2
	e.publishIn(&pr2)
	waitFor(t, 10*e2eTimeoutScale, "the second 1:1 portal", func() bool {
		r, err := e.a.db.portals().Room(t.Context(), room2)
		return err == nil && r.Kind == portals.KindDM
	})
	for i, c := range []struct {
		room       event.RoomURI
		bob, alice string
	}{{room2, "Noch eine Frage", "Ja, bitte"}, {room, "Zurück zum ersten Thema", "Gern"}} {
		bm, _ := (&content.Builder{SenderURI: string(testBob), RoomURI: string(c.room)}).Text(c.bob)
		in, _ := mimiEnv(t, event.KindMessage, c.room, testBob, bm)
		e.publishIn(in)
		got := alice.expect("bob's message in "+string(c.room), and(named("message"), from(testBobPuppet), bodyIs(c.bob)))
		if got.attr("type") != "chat" {
			t.Fatalf("bob's message in %s: %s", c.room, got)
		}
		id := "d" + strconv.Itoa(i+2)
		alice.send(`<message to='` + testBobPuppet + `' type='chat' id='` + id + `'><body>` + c.alice + `</body></message>`)
		ans := e.out.wait(t, "alice's answer "+id, func(x *event.Envelope) bool {
			return x.Kind == event.KindMessage && x.Origin.Event == event.NativeEventID(id)
		})
		if ans.Room != c.room {
			t.Fatalf("alice's answer %q went to %s, want %s, where bob wrote", c.alice, ans.Room, c.room)
		}
	}
	// Her correction of the answer she sent into the newer room goes there, although the first
	// room is current now.
	alice.send(`<message to='` + testBobPuppet + `' type='chat' id='d4'><body>Ja, bitte sehr</body><replace id='d2' xmlns='urn:xmpp:message-correct:0'/></message>`)
	if ed := e.out.wait(t, "alice's correction", func(x *event.Envelope) bool { return x.Origin.Event == "d4" }); ed.Kind != event.KindEdit || ed.Room != room2 {
		t.Fatalf("alice's correction of d2: %s in %s, want an edit in %s", ed.Kind, ed.Room, room2)
	}
	alice.none("a MUC invitation", and(named("message"), hasChild(xstanza.NSMUCUser, "x")))
	if n := e.out.count(func(x *event.Envelope) bool { return x.Kind == event.KindMembership }); n != 0 {
		t.Fatalf("%d membership envelopes: an answer started a 1:1 of its own", n)
	}
}
