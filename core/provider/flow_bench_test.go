package provider

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/ops/cputime"
	"github.com/mimi-gateway/mimi-gateway/core/ops/syscount"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// flowResult is what flow measured.
type flowResult struct {
	wall      time.Duration
	cpu       time.Duration // process CPU time (both providers and their NATS servers)
	latencies []time.Duration
	commits   float64 // store transactions committed, both stores
	fsyncs    float64 // fsync and fdatasync calls of the process; -1 if they could not be counted
}

// flow publishes msgs on from's mimi.out, paced at rate messages per second (0: all at once),
// and waits until each has arrived on to's mimi.in, every room's in the order sent. It
// measures from the first publish to the last arrival; a message's latency runs from just
// before its publish to its arrival on the receiver's bus.
func flow(b *testing.B, from, to *node, msgs []*event.Envelope, rate float64) flowResult {
	b.Helper()
	sentAt := make([]time.Time, len(msgs))
	index := map[string]int{}
	want := map[event.RoomURI][][]byte{}
	for i, m := range msgs {
		index[string(m.Content)] = i
		want[m.Room] = append(want[m.Room], m.Content)
	}
	commits0 := storetest.Commits(b, from.st) + storetest.Commits(b, to.st)
	fsyncs := countFsyncs(b)
	cpu0, _ := cputime.Process()
	start := time.Now()
	// The publisher hands each index over after writing its sentAt, so reading it on arrival
	// is ordered after the write.
	published := make(chan int, len(msgs))
	failed := make(chan error, 1)
	go func() {
		for i, m := range msgs {
			if rate > 0 {
				if d := time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second)))); d > 0 {
					time.Sleep(d)
				}
			}
			sentAt[i] = time.Now()
			published <- i
			if err := publishEnvelope(from, m); err != nil {
				failed <- err
				return
			}
		}
	}()
	var r flowResult
	seen := make([]bool, len(msgs))
	for range msgs {
		select {
		case err := <-failed:
			b.Fatalf("publish: %v", err)
		default:
		}
		got := expect(b, to, "message", func(e *event.Envelope) bool { return e.Kind == event.KindMessage })
		now := time.Now()
		w := want[got.Room]
		if len(w) == 0 || !bytes.Equal(got.Content, w[0]) {
			b.Fatalf("room %s: message out of order or unexpected on %s's mimi.in", got.Room, to.domain)
		}
		want[got.Room] = w[1:]
		i := index[string(got.Content)]
		for !seen[i] {
			seen[<-published] = true
		}
		r.latencies = append(r.latencies, now.Sub(sentAt[i]))
	}
	r.wall = time.Since(start)
	cpu1, _ := cputime.Process()
	r.cpu = cpu1 - cpu0
	r.commits = storetest.Commits(b, from.st) + storetest.Commits(b, to.st) - commits0
	r.fsyncs = fsyncs()
	return r
}

// report reports r's metrics for n messages: msgs/s, cpu-ms/msg, p50-ms, p99-ms, tx/msg and
// fsync/msg.
func (r flowResult) report(b *testing.B, n int) {
	b.ReportMetric(float64(n)/r.wall.Seconds(), "msgs/s")
	if r.cpu > 0 {
		b.ReportMetric(float64(r.cpu)/float64(n)/1e6, "cpu-ms/msg")
	}
	l := slices.Clone(r.latencies)
	slices.Sort(l)
	if len(l) > 0 {
		b.ReportMetric(float64(l[len(l)/2])/1e6, "p50-ms")
		b.ReportMetric(float64(l[min(len(l)-1, len(l)*99/100)])/1e6, "p99-ms")
	}
	b.ReportMetric(r.commits/float64(n), "tx/msg")
	if r.fsyncs >= 0 {
		b.ReportMetric(r.fsyncs/float64(n), "fsync/msg")
	}
}

// countFsyncs starts counting the process's fsync and fdatasync calls (all threads: both
// providers, their SQLite stores and NATS servers) and returns the function that stops and
// reads the count, -1 where perf events are not available (syscount.Open).
func countFsyncs(t testing.TB) func() float64 {
	since, err := syscount.Start(syscount.Fsyncs)
	if err != nil {
		t.Logf("fsyncs not counted: %v", err)
		return func() float64 { return -1 }
	}
	return func() float64 {
		n, err := since()
		if err != nil {
			t.Logf("fsyncs not counted: %v", err)
			return -1
		}
		return float64(n)
	}
}

// roomsName names a sub-benchmark by its rooms and offered rate.
func roomsName(rooms int, rate float64) string {
	s := fmt.Sprintf("rooms=%d", rooms)
	if rate > 0 {
		s += fmt.Sprintf("/offered=%g", rate)
	}
	return strings.ReplaceAll(s, " ", "")
}
