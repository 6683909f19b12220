package killreplica

import (
	"testing"

	"github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway/internal/gatewaytest"
	"github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway/scaleout"
)

// TestScaleOutKillReplica: three replicas of A under load; the leader is killed (SIGKILL) a
// third of the way through; a standby takes over and everything is delivered once, in order.
func TestScaleOutKillReplica(t *testing.T) {
	c := scaleout.NewCluster(t, 3)
	l := c.Setup()
	var killed *gatewaytest.Gateway
	c.Run(l, scaleout.Rate, func(i int) {
		if i == len(l.Msgs)/3 {
			killed = c.LeaderGateway()
			t.Logf("SIGKILL of the leader %s after %d messages", killed.MIMIAddr, i+1)
			killed.Kill()
		}
	})
	c.Check(l)
	if g := c.LeaderGateway(); g == killed {
		t.Fatal("the killed replica still leads")
	}
	t.Logf("done: %s", c.Summary())
}
