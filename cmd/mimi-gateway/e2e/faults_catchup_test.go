package e2e

import (
	"testing"
	"time"
)

// TestKillGatewayMatrixLongOutage: gateway A (Dendrite, appservice mode) is killed for 35 s
// under the stream. Dendrite retries a failed transaction 2, 6, 14, 30 and 62 s after the first
// failure, so the gateway is back between two attempts and Dendrite's next one is about 20 s
// away (after a 20 s outage it would be only 5 to 9 s away, within the 10 s anyway). Alice's
// messages of the outage must not wait for it: the gateway catches up from its bot's sync, and
// they arrive within 10 s of its return, each once and in order, as for every kill.
func TestKillGatewayMatrixLongOutage(t *testing.T) {
	t.Parallel()
	f := matrixXMPPPair(t)
	pr := f.procs["gateway A"]
	pr.down = 35 * time.Second
	killStream(t, f.p.name+" long "+pr.name, f.p.a, f.p.b, f.ca, f.cb, []proc{pr}, f.p.xmppClients...)
}
