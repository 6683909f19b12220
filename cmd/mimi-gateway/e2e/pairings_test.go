package e2e

import (
	"bytes"
	"fmt"
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
	// procs are killed in turn during the kill stream; xmppClients are the XMPP users' clients,
	// kept connected during it.
	procs       []proc
	xmppClients []*gt.XMPPClient
	// measureLatency runs the latency measurement (Matrix → MIMI → XMPP and back).
	measureLatency bool
}

func (p *pairing) matrixA(t *testing.T, org *gt.MatrixOrg) {
	p.a, p.a2, p.a3 = newMatrixPerson(t, org, "alice"), newMatrixPerson(t, org, "anna"), newMatrixPerson(t, org, "arne")
	p.gwA = org.Gateway
	p.procs = append(p.procs, gatewayProc(org.Gateway), matrixProc(org))
}

func (p *pairing) matrixB(t *testing.T, org *gt.MatrixOrg) {
	p.b, p.b2, p.b3 = newMatrixPerson(t, org, "bob"), newMatrixPerson(t, org, "berta"), newMatrixPerson(t, org, "bernd")
	p.gwB = org.Gateway
	p.procs = append(p.procs, gatewayProc(org.Gateway), matrixProc(org))
}

func (p *pairing) xmppA(t *testing.T, org *gt.XMPPOrg) {
	x := []*xmppPerson{newXMPPPerson(t, org, "alice"), newXMPPPerson(t, org, "anna"), newXMPPPerson(t, org, "arne")}
	p.a, p.a2, p.a3 = x[0], x[1], x[2]
	p.gwA = org.Gateway
	p.procs = append(p.procs, gatewayProc(org.Gateway), prosodyProc(t, org))
	p.xmppClients = append(p.xmppClients, x[0].c, x[1].c, x[2].c)
}

func (p *pairing) xmppB(t *testing.T, org *gt.XMPPOrg) {
	x := []*xmppPerson{newXMPPPerson(t, org, "bob"), newXMPPPerson(t, org, "berta"), newXMPPPerson(t, org, "bernd")}
	p.b, p.b2, p.b3 = x[0], x[1], x[2]
	p.gwB = org.Gateway
	p.procs = append(p.procs, gatewayProc(org.Gateway), prosodyProc(t, org))
	p.xmppClients = append(p.xmppClients, x[0].c, x[1].c, x[2].c)
}

var xmppUsersA = []string{"alice", "anna", "arne"}
var xmppUsersB = []string{"bob", "berta", "bernd"}

// TestMatrixAppserviceXMPP: Klinik A on Matrix (Dendrite, gateway in appservice mode) and Amt B
// on XMPP (Prosody with the gateway's components and an upload service).
func TestMatrixAppserviceXMPP(t *testing.T) {
	t.Parallel()
	ca := protocoltest.NewCA(t)
	ka := klinikA(t, ca, gt.ModeAppservice)
	ab := amtBXMPP(t, ca, "amt-b.example", xmppUsersB...)
	startAll(t, ka.Gateway, ab.Gateway)
	p := &pairing{name: "Matrix-XMPP", measureLatency: true}
	p.matrixA(t, ka)
	p.xmppB(t, ab)
	p.run(t)
}

// TestMatrixClientAppservice: Klinik A on TI-Messenger (gateway in client mode with a functional
// account) and Amt B on BundesMessenger (gateway in appservice mode), each with its Dendrite.
func TestMatrixClientAppservice(t *testing.T) {
	t.Parallel()
	ca := protocoltest.NewCA(t)
	ka := klinikA(t, ca, gt.ModeClient)
	ab := amtBMatrix(t, ca, "amt-b.example")
	startAll(t, ka.Gateway, ab.Gateway)
	p := &pairing{name: "TIM-BuM"}
	p.matrixA(t, ka)
	p.matrixB(t, ab)
	p.run(t)
}

// TestXMPPXMPP: two agencies on XMPP, each with its Prosody and gateway.
func TestXMPPXMPP(t *testing.T) {
	t.Parallel()
	ca := protocoltest.NewCA(t)
	ac := amtBXMPP(t, ca, "amt-c.example", xmppUsersA...)
	ab := amtBXMPP(t, ca, "amt-b.example", xmppUsersB...)
	startAll(t, ac.Gateway, ab.Gateway)
	p := &pairing{name: "XMPP-XMPP"}
	p.xmppA(t, ac)
	p.xmppB(t, ab)
	p.run(t)
}

// TestMatrixMatrix: two organisations on Matrix, both gateways in appservice mode.
func TestMatrixMatrix(t *testing.T) {
	t.Parallel()
	ca := protocoltest.NewCA(t)
	ka := klinikA(t, ca, gt.ModeAppservice)
	ab := amtBMatrix(t, ca, "amt-b.example")
	startAll(t, ka.Gateway, ab.Gateway)
	p := &pairing{name: "Matrix-Matrix"}
	p.matrixA(t, ka)
	p.matrixB(t, ab)
	p.run(t)
}

// run runs the scenarios of a pairing in order. The 1:1 chat that A starts carries the
// latency measurement, the kill stream and the partner-down scenario afterwards.
func (p *pairing) run(t *testing.T) {
	var ca, cb chat
	t.Run("1:1 from A", func(t *testing.T) { ca, cb = conversation(t, p.a, p.b, nil, "1:1 von A") })
	t.Run("1:1 from B", func(t *testing.T) { conversation(t, p.b2, p.a2, nil, "1:1 von B") })
	t.Run("group from A", func(t *testing.T) { conversation(t, p.a, p.b3, p.b2, "Gruppe A") })
	t.Run("group from B", func(t *testing.T) { conversation(t, p.b, p.a3, p.a2, "Gruppe B") })
	t.Run("unknown user from A", func(t *testing.T) { unknownUser(t, p.a, p.b.URI().Domain()) })
	t.Run("unknown user from B", func(t *testing.T) { unknownUser(t, p.b, p.a.URI().Domain()) })
	needChat := func(t *testing.T) {
		if ca == nil || cb == nil {
			t.Fatal("needs the 1:1 chat that A started, which failed")
		}
	}
	if p.measureLatency {
		t.Run("latency", func(t *testing.T) {
			needChat(t)
			ab, ba := latency(t, p.name+" Latenz", p.a, p.b, ca, cb, 120)
			t.Logf("%s latency at 2 messages/s: A→B p50 %s p99 %s (n=%d); B→A p50 %s p99 %s (n=%d)", p.name,
				percentile(ab, 50).Round(time.Millisecond), percentile(ab, 99).Round(time.Millisecond), len(ab),
				percentile(ba, 50).Round(time.Millisecond), percentile(ba, 99).Round(time.Millisecond), len(ba))
		})
	}
	t.Run("kill stream", func(t *testing.T) {
		needChat(t)
		killStream(t, p.name+" Strom", p.a, p.b, ca, cb, p.procs, p.xmppClients...)
	})
	t.Run("partner down", func(t *testing.T) {
		needChat(t)
		partnerDown(t, p.a, p.b, ca, cb, p.gwA, p.gwB)
	})
}

var withFiles = true

// conversation: starter opens a conversation with peer (1:1, or a group with peer and peerMate
// when peerMate is given), and they exchange text, a reply, edits, reactions, a deletion, a file
// each way and read receipts. It returns both views of the conversation.
func conversation(t *testing.T, starter, peer, peerMate person, topic string) (chat, chat) {
	group := peerMate != nil
	peers := []person{peer}
	if group {
		peers = append(peers, peerMate)
	}
	cs := starter.startChat(t, group, topic, peers...)
	hello := cs.send(t, "Hallo "+peer.Name()+" ("+topic+")")
	cp := peer.acceptChat(t, starter, group, "")
	helloP := cp.waitText(t, starter, hello.text)
	if x, ok := cs.(*xmppChat); ok && !group {
		x.waitDelivered(t, hello)
	}

	ans := cp.reply(t, helloP, "Guten Tag, "+starter.Name())
	ansS := cs.waitReply(t, peer, ans.text, hello)

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

	if withFiles {
		doc := bytes.Repeat([]byte("Befund "+topic+"\n"), 200)
		cs.sendFile(t, "befund.txt", doc)
		cp.waitFile(t, starter, "befund.txt", doc)
		answer := bytes.Repeat([]byte("Antwortschreiben\n"), 300)
		cp.sendFile(t, "antwort.txt", answer)
		cs.waitFile(t, peer, "antwort.txt", answer)
	}

	gone := cs.send(t, "Diese Nachricht wird gelöscht")
	goneP := cp.waitText(t, starter, gone.text)
	cs.del(t, gone)
	cp.waitDeleted(t, starter, goneP)

	last := cs.send(t, fmt.Sprintf("Zuletzt (%s)", topic))
	lastP := cp.waitText(t, starter, last.text)
	cp.markRead(t, lastP)
	cs.waitRead(t, peer, last)
	return cs, cp
}
