package provider

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/ops/cputime"
)

// BenchmarkMessagesGroupSize measures what one application message costs as the room grows: the
// path of BenchmarkMessages (hub → follower: Alice's envelope on the hub's mimi.out, encryption,
// hub sequencing, fanout, the follower's inbox, decryption, the envelope on the follower's
// mimi.in) in rooms of 2, 50, 500 and 5,000 members, half of them users of each provider, all
// but Bob added by one commit. It reports
//   - msgs/s: messages delivered per second of wall time, b.N messages in flight;
//   - cpu-ms/msg: process CPU time (user + system, both providers with their NATS servers) per
//     message, the number to compare on a shared machine;
//   - necessary-ms/msg: the CPU time of the cryptographic work a message cannot avoid, measured
//     in the same run on copies of the sender's and a receiver's state: one Encrypt and one
//     Process (decrypt and verify);
//   - ratio: cpu-ms/msg over necessary-ms/msg;
//   - fsync/msg: fsync and fdatasync calls of the process per message (where perf events are
//     permitted: syscount), SQLite commits and JetStream stores and state files together.
//
// Run it with a fixed -benchtime (e.g. 200x): every b.N builds the room anew. With
// MIMI_BENCH_CPUPROFILE set to a path prefix, the timed part of each sub-benchmark is CPU
// profiled to <prefix>-<members>.pprof.
func BenchmarkMessagesGroupSize(b *testing.B) {
	for _, n := range []int{2, 50, 500, 5000} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			a, bn := pair(b)
			alice, bob, room := roomOfSize(b, a, bn, n)
			msgs := make([]*event.Envelope, b.N)
			for i := range msgs {
				msgs[i] = message(b, room, alice, fmt.Sprintf("benchmark message %d", i))
			}
			runtime.GC()
			stop := cpuProfile(b, fmt.Sprint(n))
			b.ResetTimer()
			fsyncs := countFsyncs(b)
			cpu0, cpuOK := cputime.Process()
			start := time.Now()
			for _, m := range msgs {
				publishOut(b, a, m)
			}
			expectInOrder(b, bn, map[event.RoomURI][][]byte{room: contents(msgs)})
			wall := time.Since(start)
			cpu1, _ := cputime.Process()
			nsync := fsyncs()
			b.StopTimer()
			stop()
			b.ReportMetric(float64(b.N)/wall.Seconds(), "msgs/s")
			if nsync >= 0 {
				b.ReportMetric(nsync/float64(b.N), "fsync/msg")
			}
			if !cpuOK {
				return
			}
			perMsg := float64(cpu1-cpu0) / float64(b.N) / 1e6
			b.ReportMetric(perMsg, "cpu-ms/msg")
			if need := necessaryWork(b, a, bn, room, alice, bob); need > 0 {
				b.ReportMetric(need, "necessary-ms/msg")
				b.ReportMetric(perMsg/need, "ratio")
			}
		})
	}
}

// cpuProfile starts a CPU profile to $MIMI_BENCH_CPUPROFILE-<name>.pprof if that is set and
// returns the function that stops it.
func cpuProfile(t testing.TB, name string) func() {
	prefix := os.Getenv("MIMI_BENCH_CPUPROFILE")
	if prefix == "" {
		return func() {}
	}
	f, err := os.Create(prefix + "-" + name + ".pprof")
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}

func contents(msgs []*event.Envelope) [][]byte {
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		out[i] = m.Content
	}
	return out
}

// roomOfSize has Alice (a user of the hub a) create a room with Bob (a user of b), then add
// n-2 further users in one commit: users of a up to half of the room (rounded up), users of b
// for the rest. It returns once every client has joined on both sides and both inboxes are
// empty, draining what the adapters would see meanwhile (portal requests, membership).
func roomOfSize(t testing.TB, a, b *node, n int) (alice, bob event.UserURI, room event.RoomURI) {
	t.Helper()
	ctx := context.Background()
	alice, bob, room = invited(t, a, b)
	atB := n / 2
	atA := n - atB
	var add []event.UserURI
	for i := 1; i < atA; i++ {
		add = append(add, event.NewUserURI(a.domain, fmt.Sprintf("a%d", i)))
	}
	for i := 1; i < atB; i++ {
		u := event.NewUserURI(b.domain, fmt.Sprintf("b%d", i))
		if err := b.p.EnsureUser(ctx, u, event.NetworkMatrix); err != nil {
			t.Fatal(err)
		}
		add = append(add, u)
	}
	if len(add) > 0 {
		// Bob's client may still be joining: the commit must come after the epoch he joined.
		waitClients(t, b, room, 1)
		unlock := a.p.lockRoom(room)
		err := a.p.commitLocal(ctx, room, alice, &localCommit{add: add}, "")
		unlock()
		if err != nil {
			t.Fatalf("adding %d members: %v", len(add), err)
		}
	}
	for _, nd := range []*node{a, b} {
		want := atA
		if nd == b {
			want = atB
		}
		drainUntil(t, nd, fmt.Sprintf("%d clients of %s in the room", want, nd.domain), func() error {
			var clients, inbox int
			if err := nd.st.QueryRowContext(ctx, `SELECT COUNT(*) FROM provider_clients WHERE room = ?`, string(room)).Scan(&clients); err != nil {
				return err
			}
			if err := nd.st.QueryRowContext(ctx, `SELECT COUNT(*) FROM provider_inbox`).Scan(&inbox); err != nil {
				return err
			}
			if clients != want || inbox != 0 {
				return fmt.Errorf("%d clients, %d inbox rows", clients, inbox)
			}
			return nil
		})
	}
	// Envelopes about the build still on the way to the test consumer.
	for _, nd := range []*node{a, b} {
		for done := false; !done; {
			select {
			case d := <-nd.in:
				if d.env.Kind == event.KindMessage {
					t.Fatalf("message on %s's mimi.in before any was sent", nd.domain)
				}
			case <-time.After(500 * time.Millisecond):
				done = true
			}
		}
	}
	return alice, bob, room
}

// waitClients waits until nd holds want clients in room.
func waitClients(t testing.TB, nd *node, room event.RoomURI, want int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d clients at %s", want, nd.domain), func() error {
		var n int
		if err := nd.st.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM provider_clients WHERE room = ?`, string(room)).Scan(&n); err != nil {
			return err
		}
		if n != want {
			return fmt.Errorf("%d clients", n)
		}
		return nil
	})
}

// drainUntil discards envelopes arriving on nd's mimi.in (so that its consumer never blocks)
// until cond returns nil, failing after a generous deadline (building a large room is slow).
func drainUntil(t testing.TB, nd *node, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Minute)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-nd.in:
			continue
		case <-tick.C:
		}
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
	}
}

// necessaryWork returns the CPU milliseconds of one Encrypt by sender's client and one Process
// of its result by receiver's client, measured on copies of their stored states (which the
// benchmark left in the same epoch) on one locked OS thread.
func necessaryWork(t testing.TB, a, b *node, room event.RoomURI, sender, receiver event.UserURI) float64 {
	t.Helper()
	ctx := context.Background()
	var s, r *clientState
	waitFor(t, "states of sender and receiver", func() error {
		var err error
		if s, err = loadClient(ctx, a.st, room, sender); err != nil {
			return err
		}
		r, err = loadClient(ctx, b.st, room, receiver)
		return err
	})
	const k = 200
	data, err := frame(s, message(t, room, sender, "necessary work").Content)
	if err != nil {
		t.Fatal(err)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start, ok := cputime.Thread()
	if !ok {
		return 0
	}
	for range k {
		m, err := s.Group.Encrypt(data, nil)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		dm, err := mls.DecodeMLSMessage(raw)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.Group.Process(dm, mls.ProcessOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	end, _ := cputime.Thread()
	return float64(end-start) / k / 1e6
}
