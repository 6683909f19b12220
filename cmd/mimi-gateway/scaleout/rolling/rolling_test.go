package rolling

import (
	"testing"

	"github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway/scaleout"
)

// TestScaleOutRollingRestart: every replica of A is restarted in turn (SIGTERM, the graceful
// shutdown that hands the lease over, then started again) while the load runs; everything is
// delivered once, in order.
func TestScaleOutRollingRestart(t *testing.T) {
	c := scaleout.NewCluster(t, 3)
	l := c.Setup()
	step := len(l.Msgs) / (len(c.A) + 1)
	c.Run(l, scaleout.Rate, func(i int) {
		if i == 0 || i%step != 0 || i/step > len(c.A) {
			return
		}
		g := c.A[i/step-1]
		t.Logf("rolling restart: replica %d (%s) after %d messages", i/step-1, g.MIMIAddr, i+1)
		g.Stop()
		if err := g.ExitError(); err != nil {
			t.Errorf("replica %s did not shut down cleanly: %v", g.MIMIAddr, err)
		}
		g.StartReady(t)
		c.LeaderGateway()
	})
	c.Check(l)
}
