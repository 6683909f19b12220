package natsnode

import (
	"testing"

	"github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway/scaleout"
)

// TestScaleOutKillNATSNode: one node of the three-node NATS cluster is killed (SIGKILL) a third
// of the way through the load and started again at two thirds; the streams (three replicas)
// keep everything, and everything is delivered once, in order.
func TestScaleOutKillNATSNode(t *testing.T) {
	c := scaleout.NewCluster(t, 3)
	l := c.Setup()
	c.Run(l, scaleout.Rate, func(i int) {
		switch i {
		case len(l.Msgs) / 3:
			t.Logf("SIGKILL of NATS node %s after %d messages", c.NATS.Nodes[0].Name, i+1)
			c.NATS.Nodes[0].Process().Kill()
		case 2 * len(l.Msgs) / 3:
			t.Logf("NATS node %s starts again after %d messages", c.NATS.Nodes[0].Name, i+1)
			c.NATS.Start(0)
		}
	})
	c.Check(l)
}
