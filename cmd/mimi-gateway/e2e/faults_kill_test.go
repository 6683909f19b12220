package e2e

import (
	"testing"

	gt "github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway/internal/gatewaytest"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
)

// The kill tests: SIGKILL under a stream of 200 messages (2 per second, both directions) in a
// 1:1 chat, of one process per test (Matrix ↔ XMPP, each test on its own organisations so they
// run in parallel) or of each process in turn (killEachInTurn: Matrix ↔ Matrix here, XMPP ↔ XMPP
// and TI-Messenger ↔ BundesMessenger in their files). Every message must arrive exactly once and
// in order, and the first message typed during each outage within 10 s of the process being
// back (killStream prints each delay).

// faultPair is a 1:1 chat between alice of organisation A and bob of organisation B, started by
// alice, with the processes that can be killed.
type faultPair struct {
	p      *pairing
	ca, cb chat
	// procs by role: "gateway A", "gateway B", "server A", "server B".
	procs map[string]proc
}

// matrixXMPPPair starts Klinik A (Dendrite, gateway in appservice mode) and Amt B (Prosody and
// its gateway) and opens alice's 1:1 chat with bob.
func matrixXMPPPair(t *testing.T) *faultPair {
	ca := protocoltest.NewCA(t)
	ka := klinikA(t, ca, gt.ModeAppservice)
	ab := amtBXMPP(t, ca, "amt-b.example", "bob")
	startAll(t, ka.Gateway, ab.Gateway)
	p := &pairing{name: "Matrix-XMPP", a: newMatrixPerson(t, ka, "alice"), gwA: ka.Gateway, gwB: ab.Gateway}
	bob := newXMPPPerson(t, ab, "bob")
	p.b = bob
	p.xmppClients = []*gt.XMPPClient{bob.c}
	f := &faultPair{p: p, procs: map[string]proc{
		"gateway A": gatewayProc(ka.Gateway), "server A": matrixProc(ka),
		"gateway B": gatewayProc(ab.Gateway), "server B": prosodyProc(t, ab),
	}}
	f.open(t)
	return f
}

// matrixMatrixPair starts Klinik A and Amt B, each on its Dendrite with its gateway in
// appservice mode, and opens alice's 1:1 chat with bob.
func matrixMatrixPair(t *testing.T) *faultPair {
	return matrixPairOf(t, "Matrix-Matrix", gt.ModeAppservice)
}

// matrixPairOf starts Klinik A (its gateway in the mode given) and Amt B (Dendrite, gateway in
// appservice mode), and opens alice's 1:1 chat with bob.
func matrixPairOf(t *testing.T, name string, modeA string) *faultPair {
	ca := protocoltest.NewCA(t)
	ka := klinikA(t, ca, modeA)
	ab := amtBMatrix(t, ca, "amt-b.example")
	startAll(t, ka.Gateway, ab.Gateway)
	p := &pairing{name: name, a: newMatrixPerson(t, ka, "alice"), b: newMatrixPerson(t, ab, "bob"), gwA: ka.Gateway, gwB: ab.Gateway}
	f := &faultPair{p: p, procs: map[string]proc{
		"gateway A": gatewayProc(ka.Gateway), "server A": matrixProc(ka),
		"gateway B": gatewayProc(ab.Gateway), "server B": matrixProc(ab),
	}}
	f.open(t)
	return f
}

// open: alice starts a 1:1 chat with bob, who has never used his gateway, and they greet each
// other.
func (f *faultPair) open(t *testing.T) {
	t.Helper()
	a, b := f.p.a, f.p.b
	f.ca = a.startChat(t, false, "Strom", b)
	hello := f.ca.send(t, "Hallo "+b.Name())
	f.cb = b.acceptChat(t, a, false, "")
	f.cb.waitText(t, a, hello.text)
	back := f.cb.send(t, "Hallo "+a.Name())
	f.ca.waitText(t, b, back.text)
}

// killTest is one kill test: a fresh pair of organisations (so that the kill tests run in
// parallel), the stream, and one SIGKILL of the process of the role during it.
func killTest(t *testing.T, pair func(*testing.T) *faultPair, role string) {
	t.Parallel()
	f := pair(t)
	pr, ok := f.procs[role]
	if !ok {
		t.Fatalf("no process %q", role)
	}
	killStream(t, f.p.name+" "+pr.name, f.p.a, f.p.b, f.ca, f.cb, []proc{pr}, f.p.xmppClients...)
}

// killEachInTurn runs the kill stream in the pair's chat, killing gateway A, server A, gateway B
// and server B in turn.
func (f *faultPair) killEachInTurn(t *testing.T) {
	var procs []proc
	for _, role := range []string{"gateway A", "server A", "gateway B", "server B"} {
		procs = append(procs, f.procs[role])
	}
	killStream(t, f.p.name+" Strom", f.p.a, f.p.b, f.ca, f.cb, procs, f.p.xmppClients...)
}

// Klinik A (Dendrite, gateway in appservice mode) ↔ Amt B (Prosody).

func TestKillGatewayMatrix(t *testing.T) { killTest(t, matrixXMPPPair, "gateway A") }
func TestKillDendrite(t *testing.T)      { killTest(t, matrixXMPPPair, "server A") }
func TestKillGatewayXMPP(t *testing.T)   { killTest(t, matrixXMPPPair, "gateway B") }
func TestKillProsody(t *testing.T)       { killTest(t, matrixXMPPPair, "server B") }

// TestKillMatrixMatrix: Klinik A ↔ Amt B, both on Matrix (each a Dendrite and a gateway in
// appservice mode): one stream of 200 messages (2 per second, both directions) in alice's 1:1
// chat with bob, during which gateway A, Dendrite A, gateway B and Dendrite B are killed in turn
// (SIGKILL, 5 s down, 20 s apart). Every message arrives exactly once and in order; the first
// message typed during each outage, in each direction, arrives within 10 s of the process being
// back (killStream prints each delay). One pair of organisations for the four kills.
func TestKillMatrixMatrix(t *testing.T) {
	t.Parallel()
	matrixMatrixPair(t).killEachInTurn(t)
}
