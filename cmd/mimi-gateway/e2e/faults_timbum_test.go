package e2e

import (
	"testing"

	gt "github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway/internal/gatewaytest"
)

// The fault tests of the headline pairing: Klinik A on TI-Messenger (its Dendrite, gateway A in
// client mode with a functional account) and Amt B on BundesMessenger (its Dendrite, gateway B in
// appservice mode), with real E2EE clients on both sides.

// timBumPair starts Klinik A (client mode) and Amt B (appservice mode) and opens alice's 1:1
// chat with bob: alice creates an encrypted room with the functional account and asks it to
// invite bob, who has never used his gateway.
func timBumPair(t *testing.T) *faultPair { return matrixPairOf(t, "TIM-BuM", gt.ModeClient) }

// TestKillTIMBuM: one stream of 200 messages (2 per second, both directions) in alice's
// (TI-Messenger) 1:1 chat with bob (BundesMessenger), during which gateway A (client mode),
// Dendrite A, gateway B (appservice mode) and Dendrite B are killed in turn (SIGKILL, 5 s down, 20
// s apart). Every message arrives exactly once and in order; the first message typed during each
// outage, in each direction, arrives within 10 s of the process being back (killStream prints
// each delay).
func TestKillTIMBuM(t *testing.T) {
	t.Parallel()
	timBumPair(t).killEachInTurn(t)
}

// TestPartnerDownTIMBuM: Amt B's gateway stays down for two minutes while alice (TI-Messenger)
// writes, then Klinik A's gateway stays down for two minutes while bob (BundesMessenger) writes.
// Each writer sees the notice that the partner cannot be reached in her client within 15 s (from
// the functional account for alice, from the appservice bot for bob), and the message arrives
// exactly once after the partner is back. One pair of organisations for both directions: the
// second outage starts after the first one's message arrived.
func TestPartnerDownTIMBuM(t *testing.T) {
	t.Parallel()
	f := timBumPair(t)
	t.Run("TIM writes", func(t *testing.T) { partnerStaysDown(t, f, true) })
	t.Run("BuM writes", func(t *testing.T) { partnerStaysDown(t, f, false) })
}
