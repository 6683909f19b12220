package e2e

import (
	"sync"
	"testing"

	gt "github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway/internal/gatewaytest"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
)

// The fault tests of the pairings of two organisations on the same network: XMPP ↔ XMPP (a kill
// stream, partner down) and Matrix ↔ Matrix (partner down; its kills are in faults_kill_test.go).

// xmppXMPPPair starts Amt C and Amt B, each on its Prosody with its gateway, and opens alice's
// (Amt C) 1:1 chat with bob (Amt B).
func xmppXMPPPair(t *testing.T) *faultPair {
	ca := protocoltest.NewCA(t)
	ac := amtBXMPP(t, ca, "amt-c.example", "alice")
	ab := amtBXMPP(t, ca, "amt-b.example", "bob")
	startAll(t, ac.Gateway, ab.Gateway)
	alice, bob := newXMPPPerson(t, ac, "alice"), newXMPPPerson(t, ab, "bob")
	p := &pairing{name: "XMPP-XMPP", a: alice, b: bob, gwA: ac.Gateway, gwB: ab.Gateway, xmppClients: []*gt.XMPPClient{alice.c, bob.c}}
	f := &faultPair{p: p, procs: map[string]proc{
		"gateway A": gatewayProc(ac.Gateway), "server A": prosodyProc(t, ac),
		"gateway B": gatewayProc(ab.Gateway), "server B": prosodyProc(t, ab),
	}}
	f.open(t)
	return f
}

// TestKillXMPPXMPP: one stream of 200 messages (2 per second, both directions) in alice's 1:1
// chat with bob, during which gateway A, Prosody A, gateway B and Prosody B are killed in turn
// (SIGKILL, 5 s down, 20 s apart). Every message arrives exactly once and in order; the first
// message typed during each outage, in each direction, arrives within 10 s of the process being
// back (killStream prints each delay).
func TestKillXMPPXMPP(t *testing.T) {
	t.Parallel()
	xmppXMPPPair(t).killEachInTurn(t)
}

// TestPartnerDownPairs: partner down for two minutes in the XMPP ↔ XMPP and the Matrix ↔ Matrix
// pairing, each way (partnerStaysDown: the writer sees this outage's notice within 15 s, the
// message arrives once after the partner's return). The cases run at once, each on its own
// organisations: most of their time is the two minutes of waiting, so they overlap whatever go
// test's -parallel is.
func TestPartnerDownPairs(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		pair      func(*testing.T) *faultPair
		writerIsA bool
	}{
		{"XMPP-XMPP/A writes", xmppXMPPPair, true},
		{"XMPP-XMPP/B writes", xmppXMPPPair, false},
		{"Matrix-Matrix/A writes", matrixMatrixPair, true},
		{"Matrix-Matrix/B writes", matrixMatrixPair, false},
	}
	var wg sync.WaitGroup
	for _, c := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(c.name, func(t *testing.T) { partnerStaysDown(t, c.pair(t), c.writerIsA) })
		}()
	}
	wg.Wait()
}
