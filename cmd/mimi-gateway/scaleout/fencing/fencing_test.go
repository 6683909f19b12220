package fencing

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway/internal/gatewaytest"
	"github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway/scaleout"
)

// TestScaleOutLeaseLossFencing: the leader is paused (SIGSTOP) past the lease time under load;
// a standby takes over; resumed (SIGCONT), the old leader stops acting as leader: it exits
// with status 3 and writes nothing (its store is fenced), and the load is delivered once, in
// order.
func TestScaleOutLeaseLossFencing(t *testing.T) {
	c := scaleout.NewCluster(t, 2)
	c.TraceWrites()
	l := c.Setup()
	var (
		paused  *gatewaytest.Gateway
		resumed time.Time
	)
	c.Run(l, scaleout.Rate, func(i int) {
		if i != len(l.Msgs)/3 {
			return
		}
		paused = c.LeaderGateway()
		before, err := c.Leader()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("SIGSTOP of the leader %s (token %d) after %d messages", paused.MIMIAddr, before.Token, i+1)
		scaleout.Signal(t, paused.Pid(), syscall.SIGSTOP)
		next := c.LeaderGatewayOtherThan(paused)
		after, err := c.Leader()
		if err != nil {
			t.Fatal(err)
		}
		if after.Token <= before.Token {
			t.Fatalf("token after the takeover %d, before %d", after.Token, before.Token)
		}
		t.Logf("%s took over with token %d; SIGCONT of %s", next.MIMIAddr, after.Token, paused.MIMIAddr)
		if n := c.WritesBy(c.AppOf(paused), time.Time{}); len(n) == 0 {
			t.Fatal("no write of the leader was traced before it was paused: the tracing does not work")
		}
		resumed = time.Now()
		scaleout.Signal(t, paused.Pid(), syscall.SIGCONT)
		gatewaytest.Eventually(t, scaleout.Deadline, "the resumed replica exits", func() error {
			if paused.Running() {
				return scaleout.ErrStillRunning
			}
			return nil
		})
		if err := paused.ExitError(); err == nil || !strings.Contains(err.Error(), "exit status 3") {
			t.Fatalf("the resumed replica ended with %v, want exit status 3", err)
		}
		if !strings.Contains(paused.Log(), "lease lost") {
			t.Fatal("the resumed replica did not log the lost lease")
		}
		in, err := c.Leader()
		if err != nil || in.Token != after.Token || in.Address != next.MIMIAddr {
			t.Fatalf("lease after the old leader resumed: %+v, %v; want token %d at %s", in, err, after.Token, next.MIMIAddr)
		}
	})
	c.Check(l)
	if w := c.WritesBy(c.AppOf(paused), resumed); len(w) != 0 {
		t.Fatalf("the old leader wrote after it resumed (rows by table): %v", w)
	}
	t.Logf("the old leader wrote no row after it resumed; the new leader wrote %d tables' rows since", len(c.WritesBy(c.AppOf(c.LeaderGateway()), resumed)))
}
