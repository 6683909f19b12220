package e2e

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	gt "github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway/internal/gatewaytest"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
)

// readyWait bounds a gateway's start-up (stores, bus, the Matrix adapter's first sync) on a
// machine that may be loaded.
const readyWait = 3 * time.Minute

// pairing is two organisations, each with its users, started and connected.
type pairing struct {
	name string
	// a, a2, a3 are users of organisation A, b, b2, b3 of organisation B, none of whom has used
	// their gateway before the scenario that first involves them.
	a, a2, a3, b, b2, b3 person
	gwA, gwB             *gt.Gateway
	// xmppClients are the XMPP users' clients, kept connected during a kill stream.
	xmppClients []*gt.XMPPClient
}

func (p *pairing) matrixA(t *testing.T, org *gt.MatrixOrg) {
	p.a, p.a2, p.a3 = newMatrixPerson(t, org, "alice"), newMatrixPerson(t, org, "anna"), newMatrixPerson(t, org, "arne")
	p.gwA = org.Gateway
}

func (p *pairing) matrixB(t *testing.T, org *gt.MatrixOrg) {
	p.b, p.b2, p.b3 = newMatrixPerson(t, org, "bob"), newMatrixPerson(t, org, "berta"), newMatrixPerson(t, org, "bernd")
	p.gwB = org.Gateway
}

func (p *pairing) xmppA(t *testing.T, org *gt.XMPPOrg) {
	x := []*xmppPerson{newXMPPPerson(t, org, "alice"), newXMPPPerson(t, org, "anna"), newXMPPPerson(t, org, "arne")}
	p.a, p.a2, p.a3 = x[0], x[1], x[2]
	p.gwA = org.Gateway
}

func (p *pairing) xmppB(t *testing.T, org *gt.XMPPOrg) {
	x := []*xmppPerson{newXMPPPerson(t, org, "bob"), newXMPPPerson(t, org, "berta"), newXMPPPerson(t, org, "bernd")}
	p.b, p.b2, p.b3 = x[0], x[1], x[2]
	p.gwB = org.Gateway
}

var xmppUsersA = []string{"alice", "anna", "arne"}
var xmppUsersB = []string{"bob", "berta", "bernd"}

// TestPairings runs every pairing of networks the gateway supports, all at once: most of a
// pairing's time is spent waiting (for processes to come back, for a partner to stay down), so
// they overlap, whatever go test's -parallel is. Run one with -run 'TestPairings/XMPP-XMPP'.
func TestPairings(t *testing.T) {
	pairings := []struct {
		name string
		run  func(*testing.T)
	}{
		{"Matrix-XMPP", matrixAppserviceXMPP},
		{"TIM-BuM", matrixClientAppservice},
		{"XMPP-XMPP", xmppXMPP},
		{"Matrix-Matrix", matrixMatrix},
	}
	var wg sync.WaitGroup
	for _, pr := range pairings {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(pr.name, pr.run)
		}()
	}
	wg.Wait()
}

// matrixAppserviceXMPP: Klinik A on Matrix (Dendrite, gateway in appservice mode) and Amt B
// on XMPP (Prosody with the gateway's components and an upload service).
func matrixAppserviceXMPP(t *testing.T) {
	ca := protocoltest.NewCA(t)
	ka := klinikA(t, ca, gt.ModeAppservice)
	ab := amtBXMPP(t, ca, "amt-b.example", xmppUsersB...)
	startAll(t, ka.Gateway, ab.Gateway)
	p := &pairing{name: "Matrix-XMPP"}
	p.matrixA(t, ka)
	p.xmppB(t, ab)
	p.run(t, oneToOneA, readOneToOneA, oneToOneB, readOneToOneB, groupA, readGroupA, groupB, readGroupB, unknownA, unknownB, thirdA, measure, operations)
}

// matrixClientAppservice: Klinik A on TI-Messenger (gateway in client mode with a functional
// account) and Amt B on BundesMessenger (gateway in appservice mode), each with its Dendrite.
func matrixClientAppservice(t *testing.T) {
	ca := protocoltest.NewCA(t)
	ka := klinikA(t, ca, gt.ModeClient)
	ab := amtBMatrix(t, ca, "amt-b.example")
	startAll(t, ka.Gateway, ab.Gateway)
	p := &pairing{name: "TIM-BuM"}
	p.matrixA(t, ka)
	p.matrixB(t, ab)
	p.run(t, oneToOneA, readOneToOneA, oneToOneB, readOneToOneB, groupA, readGroupA, groupB, readGroupB, unknownA, unknownB, thirdA, operations)
}

// xmppXMPP: two agencies on XMPP, each with its Prosody and gateway.
func xmppXMPP(t *testing.T) {
	ca := protocoltest.NewCA(t)
	ac := amtBXMPP(t, ca, "amt-c.example", xmppUsersA...)
	ab := amtBXMPP(t, ca, "amt-b.example", xmppUsersB...)
	startAll(t, ac.Gateway, ab.Gateway)
	p := &pairing{name: "XMPP-XMPP"}
	p.xmppA(t, ac)
	p.xmppB(t, ab)
	p.run(t, oneToOneA, readOneToOneA, oneToOneB, readOneToOneB, groupA, readGroupA, groupB, readGroupB, unknownA, unknownB, operations)
}

// matrixMatrix: two organisations on Matrix, both gateways in appservice mode.
func matrixMatrix(t *testing.T) {
	ca := protocoltest.NewCA(t)
	ka := klinikA(t, ca, gt.ModeAppservice)
	ab := amtBMatrix(t, ca, "amt-b.example")
	startAll(t, ka.Gateway, ab.Gateway)
	p := &pairing{name: "Matrix-Matrix"}
	p.matrixA(t, ka)
	p.matrixB(t, ab)
	p.run(t, oneToOneA, readOneToOneA, oneToOneB, readOneToOneB, groupA, readGroupA, groupB, readGroupB, unknownA, unknownB, thirdA, operations)
}

// Scenarios of a pairing, run in the order given to run. "read …" checks the read receipt of
// the conversation of the same name; latency uses the 1:1 chat that A started. (The kill streams
// and the partner staying down have their own tests, each on its own organisations: the TestKill*
// and TestPartnerDown* tests.)
const (
	oneToOneA     = "1:1 from A"
	oneToOneB     = "1:1 from B"
	groupA        = "group from A"
	groupB        = "group from B"
	readOneToOneA = "read 1:1 from A"
	readOneToOneB = "read 1:1 from B"
	readGroupA    = "read group from A"
	readGroupB    = "read group from B"
	unknownA      = "unknown user from A"
	unknownB      = "unknown user from B"
	thirdA        = "third person into the 1:1 from A"
	measure       = "latency"
	operations    = "operations"
)

// run runs the named scenarios of a pairing in order.
func (p *pairing) run(t *testing.T, scenarios ...string) {
	convs := map[string]*conv{}
	converse := func(name string, starter, peer, peerMate person, topic string) {
		t.Run(name, func(t *testing.T) { convs[name] = conversation(t, starter, peer, peerMate, topic) })
	}
	need := func(t *testing.T, name string) *conv {
		t.Helper()
		c := convs[name]
		if c == nil {
			t.Fatalf("needs the conversation %q, which failed or did not run", name)
		}
		return c
	}
	for _, sc := range scenarios {
		switch sc {
		case oneToOneA:
			converse(sc, p.a, p.b, nil, "1:1 von A")
		case oneToOneB:
			converse(sc, p.b2, p.a2, nil, "1:1 von B")
		case groupA:
			converse(sc, p.a, p.b3, p.b2, "Gruppe A")
		case groupB:
			converse(sc, p.b, p.a3, p.a2, "Gruppe B")
		case readOneToOneA, readOneToOneB, readGroupA, readGroupB:
			t.Run(sc, func(t *testing.T) { need(t, strings.TrimPrefix(sc, "read ")).readReceipt(t) })
		case unknownA:
			t.Run(sc, func(t *testing.T) { unknownUser(t, p.a, p.b.URI().Domain()) })
		case unknownB:
			t.Run(sc, func(t *testing.T) { unknownUser(t, p.b, p.a.URI().Domain()) })
		case thirdA:
			t.Run(sc, func(t *testing.T) { thirdPerson(t, need(t, oneToOneA), p.b3) })
		case measure:
			t.Run(sc, func(t *testing.T) {
				c := need(t, oneToOneA)
				ab, ba := latency(t, p.name+" Latenz", p.a, p.b, c.cs, c.cp, 120)
				t.Logf("%s latency at 2 messages/s: A→B p50 %s p99 %s (n=%d); B→A p50 %s p99 %s (n=%d)", p.name,
					percentile(ab, 50).Round(time.Millisecond), percentile(ab, 99).Round(time.Millisecond), len(ab),
					percentile(ba, 50).Round(time.Millisecond), percentile(ba, 99).Round(time.Millisecond), len(ba))
			})
		case operations:
			t.Run(sc, func(t *testing.T) { operate(t, p, need(t, oneToOneA), need(t, oneToOneB)) })
		default:
			t.Fatalf("unknown scenario %q", sc)
		}
	}
}

// conv is a conversation between two people: both views and its last message, which the peer
// has not marked as read yet.
type conv struct {
	starter, peer person
	cs, cp        chat
	last, lastP   msg
}

// readReceipt: the peer reads the last message; the starter sees the read receipt.
func (c *conv) readReceipt(t *testing.T) {
	c.cp.markRead(t, c.lastP)
	c.cs.waitRead(t, c.peer, c.last)
}

// conversation: starter opens a conversation with peer (1:1, or a group with peer and peerMate
// when peerMate is given), and they exchange text, a reply, edits, reactions, a deletion and a
// file each way (each side deletes one of its messages; the peer's delivery receipt where the
// peer's client sends one and the starter's shows it; the first message and the answer arrived encrypted where received in a Matrix room);
// the peer receives a last message.
func conversation(t *testing.T, starter, peer, peerMate person, topic string) *conv {
	group := peerMate != nil
	peers := []person{peer}
	if group {
		peers = append(peers, peerMate)
	}
	cs := starter.startChat(t, group, topic, peers...)
	hello := cs.send(t, "Hallo "+peer.Name()+" ("+topic+")")
	cp := peer.acceptChat(t, starter, group, "")
	helloP := cp.waitText(t, starter, hello.text)
	cp.checkEncrypted(t, helloP)
	if x, ok := cs.(*xmppChat); ok && !group {
		x.waitAccepted(t, hello)
	}
	if cs.showsDelivered() && cp.sendsDelivered() {
		cp.markDelivered(t, helloP)
		cs.waitDeliveredBy(t, peer, hello)
		t.Logf("%s's delivery receipt reached %s", peer.URI(), starter.URI())
	}

	ans := cp.reply(t, helloP, "Guten Tag, "+starter.Name())
	ansS := cs.waitReply(t, peer, ans.text, hello)
	cs.checkEncrypted(t, ansS)

	cs.edit(t, hello, hello.text+" – bearbeitet")
	cp.waitEdit(t, starter, helloP, hello.text+" – bearbeitet")
	cp.edit(t, ans, ans.text+" (korrigiert)")
	cs.waitEdit(t, peer, ansS, ans.text+" (korrigiert)")

	cs.react(t, ansS, "👍")
	cp.waitReaction(t, starter, ans, "👍")
	cp.react(t, helloP, "❤️")
	cs.waitReaction(t, peer, hello, "❤️")

	if group {
		mp := peerMate.acceptChat(t, starter, true, "")
		hi := cs.send(t, "Willkommen, alle")
		mp.waitText(t, starter, hi.text)
		back := mp.send(t, "Danke")
		cs.waitText(t, peerMate, back.text)
		cp.waitText(t, peerMate, back.text)
	}

	doc := bytes.Repeat([]byte("Befund "+topic+"\n"), 200)
	cs.sendFile(t, "befund.txt", doc)
	cp.waitFile(t, starter, "befund.txt", doc)
	answer := bytes.Repeat([]byte("Antwortschreiben\n"), 300)
	cp.sendFile(t, "antwort.txt", answer)
	cs.waitFile(t, peer, "antwort.txt", answer)

	gone := cs.send(t, "Diese Nachricht wird gelöscht")
	goneP := cp.waitText(t, starter, gone.text)
	cs.del(t, gone)
	cp.waitDeleted(t, starter, goneP)
	gone2 := cp.send(t, "Auch diese wird gelöscht")
	gone2S := cs.waitText(t, peer, gone2.text)
	cp.del(t, gone2)
	cs.waitDeleted(t, peer, gone2S)

	last := cs.send(t, fmt.Sprintf("Zuletzt (%s)", topic))
	lastP := cp.waitText(t, starter, last.text)
	return &conv{starter: starter, peer: peer, cs: cs, cp: cp, last: last, lastP: lastP}
}
