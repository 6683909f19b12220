package pgrestart

import (
	"testing"

	"github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway/internal/gatewaytest"
	"github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway/scaleout"
)

// TestScaleOutPostgresRestart: A's PostgreSQL (a private server, so no other test is
// disturbed) is restarted with a fast shutdown a third of the way through the load. Replicas
// that lose their lease meanwhile exit and are started again (as an orchestrator would);
// everything is delivered once, in order.
func TestScaleOutPostgresRestart(t *testing.T) {
	pg := scaleout.StartPrivatePG(t)
	c := scaleout.NewClusterOn(t, 3, pg.Config(t))
	c.Supervise(func(*gatewaytest.Gateway) bool { return false })
	l := c.Setup()
	c.Run(l, scaleout.Rate, func(i int) {
		if i == len(l.Msgs)/3 {
			t.Logf("PostgreSQL restart after %d messages", i+1)
			pg.Restart()
		}
	})
	c.Check(l)
}
