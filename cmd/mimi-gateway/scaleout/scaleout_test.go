package scaleout

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway/internal/gatewaytest"
)

// rate paces the load (messages per second, both sides together) so that faults land in the
// middle of it.
const rate = 40

// TestScaleOutKillReplica: three replicas of A under load; the leader is killed (SIGKILL) a
// third of the way through; a standby takes over and everything is delivered once, in order.
func TestScaleOutKillReplica(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3)
	l := c.setup()
	var killed *gatewaytest.Gateway
	c.run(l, rate, func(i int) {
		if i == len(l.msgs)/3 {
			killed = c.leaderGateway()
			t.Logf("SIGKILL of the leader %s after %d messages", killed.MIMIAddr, i+1)
			killed.Kill()
		}
	})
	c.check(l)
	if g := c.leaderGateway(); g == killed {
		t.Fatal("the killed replica still leads")
	}
	t.Logf("done: %s", c.summary())
}

// TestScaleOutLeaseLossFencing: the leader is paused (SIGSTOP) past the lease time under load;
// a standby takes over; resumed (SIGCONT), the old leader stops acting as leader: it exits
// with status 3 and writes nothing (its store is fenced), and the load is delivered once, in
// order.
func TestScaleOutLeaseLossFencing(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2)
	c.traceWrites()
	l := c.setup()
	var (
		paused  *gatewaytest.Gateway
		resumed time.Time
	)
	c.run(l, rate, func(i int) {
		if i != len(l.msgs)/3 {
			return
		}
		paused = c.leaderGateway()
		before, err := c.leader()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("SIGSTOP of the leader %s (token %d) after %d messages", paused.MIMIAddr, before.Token, i+1)
		signal(t, paused.Pid(), syscall.SIGSTOP)
		next := c.leaderGatewayOtherThan(paused)
		after, err := c.leader()
		if err != nil {
			t.Fatal(err)
		}
		if after.Token <= before.Token {
			t.Fatalf("token after the takeover %d, before %d", after.Token, before.Token)
		}
		t.Logf("%s took over with token %d; SIGCONT of %s", next.MIMIAddr, after.Token, paused.MIMIAddr)
		if n := c.writesBy(c.appOf(paused), time.Time{}); len(n) == 0 {
			t.Fatal("no write of the leader was traced before it was paused: the tracing does not work")
		}
		resumed = time.Now()
		signal(t, paused.Pid(), syscall.SIGCONT)
		gatewaytest.Eventually(t, deadline, "the resumed replica exits", func() error {
			if paused.Running() {
				return errStillRunning
			}
			return nil
		})
		if err := paused.ExitError(); err == nil || !strings.Contains(err.Error(), "exit status 3") {
			t.Fatalf("the resumed replica ended with %v, want exit status 3", err)
		}
		if !strings.Contains(paused.Log(), "lease lost") {
			t.Fatal("the resumed replica did not log the lost lease")
		}
		in, err := c.leader()
		if err != nil || in.Token != after.Token || in.Address != next.MIMIAddr {
			t.Fatalf("lease after the old leader resumed: %+v, %v; want token %d at %s", in, err, after.Token, next.MIMIAddr)
		}
	})
	c.check(l)
	if w := c.writesBy(c.appOf(paused), resumed); len(w) != 0 {
		t.Fatalf("the old leader wrote after it resumed (rows by table): %v", w)
	}
	t.Logf("the old leader wrote no row after it resumed; the new leader wrote %d tables' rows since", len(c.writesBy(c.appOf(c.leaderGateway()), resumed)))
}

// TestScaleOutKillNATSNode: one node of the three-node NATS cluster is killed (SIGKILL) a third
// of the way through the load and started again at two thirds; the streams (three replicas)
// keep everything, and everything is delivered once, in order.
func TestScaleOutKillNATSNode(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3)
	l := c.setup()
	c.run(l, rate, func(i int) {
		switch i {
		case len(l.msgs) / 3:
			t.Logf("SIGKILL of NATS node %s after %d messages", c.nats.nodes[0].name, i+1)
			c.nats.nodes[0].process().Kill()
		case 2 * len(l.msgs) / 3:
			t.Logf("NATS node %s starts again after %d messages", c.nats.nodes[0].name, i+1)
			c.nats.start(0)
		}
	})
	c.check(l)
}

// TestScaleOutPostgresRestart: A's PostgreSQL (a private server, so no other test is
// disturbed) is restarted with a fast shutdown a third of the way through the load. Replicas
// that lose their lease meanwhile exit and are started again (as an orchestrator would);
// everything is delivered once, in order.
func TestScaleOutPostgresRestart(t *testing.T) {
	t.Parallel()
	pg := startPrivatePG(t)
	c := newClusterOn(t, 3, pg.config(t))
	c.supervise(func(*gatewaytest.Gateway) bool { return false })
	l := c.setup()
	c.run(l, rate, func(i int) {
		if i == len(l.msgs)/3 {
			t.Logf("PostgreSQL restart after %d messages", i+1)
			pg.restart()
		}
	})
	c.check(l)
}

// TestScaleOutRollingRestart: every replica of A is restarted in turn (SIGTERM, the graceful
// shutdown that hands the lease over, then started again) while the load runs; everything is
// delivered once, in order.
func TestScaleOutRollingRestart(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3)
	l := c.setup()
	step := len(l.msgs) / (len(c.A) + 1)
	c.run(l, rate, func(i int) {
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
		c.leaderGateway()
	})
	c.check(l)
}
