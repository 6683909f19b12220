package e2e

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	gt "github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway/internal/gatewaytest"
)

// proc is a process of a pairing that the kill stream kills (SIGKILL) and restarts in turn.
type proc struct {
	name string
	kill func()
	// restart starts it again on the same data and returns once it is back (ready, answering).
	restart func(t *testing.T)
	// down is how long it stays down after the kill; zero means streamOutage.
	down time.Duration
}

func gatewayProc(g *gt.Gateway) proc {
	return proc{name: "gateway " + g.Domain, kill: g.Kill, restart: func(t *testing.T) { g.StartReady(t) }}
}

func matrixProc(o *gt.MatrixOrg) proc {
	return proc{name: "Dendrite " + o.Domain, kill: o.HS.Kill, restart: func(t *testing.T) { o.HS.Restart(t) }}
}

func prosodyProc(t *testing.T, o *gt.XMPPOrg) proc {
	return proc{name: "Prosody " + o.Domain, kill: func() { o.Prosody.Kill(t) }, restart: func(t *testing.T) { o.Prosody.Restart(t) }}
}

const (
	streamMessages = 200
	streamInterval = 500 * time.Millisecond // 2 messages per second, both directions together
	streamOutage   = 5 * time.Second        // how long a killed process stays down
	backWithin     = 10 * time.Second       // the first message of an outage arrives this soon after the process is back
)

// streamMsg is one message of a stream.
type streamMsg struct {
	i     int
	text  string
	sched time.Time // when the person typed it
	from  int       // 0: a → b, 1: b → a
}

// outage is one kill of the stream.
type outage struct {
	proc   string
	down   time.Duration
	killed time.Time
	back   time.Time
}

// killStream sends 200 messages at 2 per second, alternating a → b and b → a in the chats ca
// (a's view) and cb (b's view), and kills each process in turn during it. Every message must
// arrive exactly once and in order, and the first message typed during each outage must arrive
// within 10 s of the process being back (each delay is printed). xmppClients are kept connected
// (reconnected after their server came back), as a client app does.
func killStream(t *testing.T, label string, a, b person, ca, cb chat, procs []proc, xmppClients ...*gt.XMPPClient) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, c := range xmppClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
					_ = c.EnsureConnected()
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()

	start := time.Now().Add(time.Second)
	msgs := make([]streamMsg, streamMessages)
	for i := range msgs {
		dir := "A→B"
		if i%2 == 1 {
			dir = "B→A"
		}
		msgs[i] = streamMsg{i: i, text: fmt.Sprintf("%s %s %03d", label, dir, i), sched: start.Add(time.Duration(i) * streamInterval), from: i % 2}
	}
	// One sender per direction, in order: a message waits for the one before it, as in a
	// client's outbox.
	errs := make(chan error, 2)
	for dir, c := range []chat{ca, cb} {
		go func() {
			for _, m := range msgs {
				if m.from != dir {
					continue
				}
				time.Sleep(time.Until(m.sched))
				if err := c.sendStream(m.text, fmt.Sprintf("%s-%03d", strings.ReplaceAll(label, " ", "-"), m.i), m.sched.Add(4*time.Minute)); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}

	// Kills, spread over the stream.
	stride := (streamMessages - 40) / len(procs)
	var outages []*outage
	for j, p := range procs {
		at := start.Add(time.Duration(20+j*stride) * streamInterval)
		time.Sleep(time.Until(at))
		o := &outage{proc: p.name, killed: time.Now(), down: cmp.Or(p.down, streamOutage)}
		p.kill()
		time.Sleep(o.down)
		p.restart(t)
		o.back = time.Now()
		outages = append(outages, o)
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}

	// Every message arrives exactly once, in order.
	want := [2][]string{}
	for _, m := range msgs {
		want[m.from] = append(want[m.from], m.text)
	}
	arrived := map[string]time.Time{}
	for dir, c := range []chat{cb, ca} { // b receives a's messages, a receives b's
		from := []person{a, b}[dir]
		gt.Eventually(t, 4*time.Minute, fmt.Sprintf("all %d messages of %s at %s's side", len(want[dir]), from.URI(), label), func() error {
			n := 0
			for _, x := range c.texts(from) {
				if strings.HasPrefix(x.text, label+" ") {
					n++
				}
			}
			if n < len(want[dir]) {
				return fmt.Errorf("%d of %d arrived", n, len(want[dir]))
			}
			return nil
		})
		var got []string
		var at []time.Time
		for _, x := range c.texts(from) {
			if strings.HasPrefix(x.text, label+" ") {
				got = append(got, x.text)
				at = append(at, x.at)
				if _, dup := arrived[x.text]; !dup {
					arrived[x.text] = x.at
				}
			}
		}
		if !slices.Equal(got, want[dir]) {
			t.Errorf("messages of %s: not exactly once and in order:\n%s%s", from.URI(), diffSeq(want[dir], got, at),
				ownCopies([]chat{ca, cb}[dir], from, got))
		}
	}

	// The first message typed during each outage in each direction, and how long after the
	// process was back it arrived.
	for _, o := range outages {
		for dir, name := range []string{"A→B", "B→A"} {
			var first *streamMsg
			for i := range msgs {
				if m := &msgs[i]; m.from == dir && !m.sched.Before(o.killed) && m.sched.Before(o.back) {
					first = m
					break
				}
			}
			if first == nil {
				t.Errorf("%s: no message %s was typed during the outage of %s", label, name, o.proc)
				continue
			}
			delay := arrived[first.text].Sub(o.back)
			t.Logf("%s: %s killed for %s (back %.1f s after the kill); first message %s typed during the outage (%q) arrived %.2f s after it was back",
				label, o.proc, o.down, o.back.Sub(o.killed).Seconds(), name, first.text, delay.Seconds())
			if delay > backWithin {
				t.Errorf("%s: after %s was back, the first message %s of the outage took %.1f s (more than %s)", label, o.proc, name, delay.Seconds(), backWithin)
			}
		}
	}
}

// ownCopies says how often the sender's own client shows each message that arrived more than
// once (a Matrix client sees its own messages): twice there means the sender's homeserver stored
// it twice, not that a gateway repeated it.
func ownCopies(own chat, from person, got []string) string {
	count := map[string]int{}
	for _, g := range got {
		count[g]++
	}
	mine := map[string]int{}
	for _, x := range own.texts(from) {
		mine[x.text]++
	}
	var b strings.Builder
	for text, n := range count {
		if n > 1 && mine[text] > 0 {
			fmt.Fprintf(&b, "  %q is %d times in the sender's own client\n", text, mine[text])
		}
	}
	return b.String()
}

// diffSeq describes how got differs from want (missing, duplicated, out of order); at[i] is when
// got[i] arrived at the receiving client, printed for a pair out of order (a message that arrived
// seconds after its successor waited somewhere; one that arrived at the same moment was sent or
// stored in the wrong order).
func diffSeq(want, got []string, at []time.Time) string {
	count := map[string]int{}
	for _, g := range got {
		count[g]++
	}
	var b strings.Builder
	for _, w := range want {
		switch n := count[w]; {
		case n == 0:
			fmt.Fprintf(&b, "  missing %q\n", w)
		case n > 1:
			fmt.Fprintf(&b, "  %d times %q\n", n, w)
		}
	}
	for i := 1; i < len(got); i++ {
		if got[i] < got[i-1] {
			fmt.Fprintf(&b, "  %q after %q (arrived %s, %s)\n", got[i], got[i-1],
				at[i].UTC().Format("15:04:05.000"), at[i-1].UTC().Format("15:04:05.000"))
		}
	}
	return b.String()
}

// latency sends n messages at 2 per second alternating a → b and b → a and returns the delays
// from typing to arrival, per direction.
func latency(t *testing.T, label string, a, b person, ca, cb chat, n int) (ab, ba []time.Duration) {
	t.Helper()
	start := time.Now().Add(time.Second)
	sent := map[string]time.Time{}
	for i := range n {
		c, dir := ca, "A→B"
		if i%2 == 1 {
			c, dir = cb, "B→A"
		}
		text := fmt.Sprintf("%s %s %03d", label, dir, i)
		at := start.Add(time.Duration(i) * streamInterval)
		time.Sleep(time.Until(at))
		sent[text] = time.Now()
		if err := c.sendStream(text, fmt.Sprintf("%s-%03d", strings.ReplaceAll(label, " ", "-"), i), at.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	for dir, c := range []chat{cb, ca} {
		from := []person{a, b}[dir]
		gt.Eventually(t, 2*time.Minute, "latency messages of "+string(from.URI()), func() error {
			k := 0
			for _, x := range c.texts(from) {
				if strings.HasPrefix(x.text, label+" ") {
					k++
				}
			}
			if k < n/2 {
				return fmt.Errorf("%d of %d", k, n/2)
			}
			return nil
		})
		for _, x := range c.texts(from) {
			if s, ok := sent[x.text]; ok {
				if dir == 0 {
					ab = append(ab, x.at.Sub(s))
				} else {
					ba = append(ba, x.at.Sub(s))
				}
			}
		}
	}
	return ab, ba
}

// percentile returns the p-th percentile (nearest rank) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	k := int(p/100*float64(len(s))+0.5) - 1
	k = max(0, min(k, len(s)-1))
	return s[k]
}
