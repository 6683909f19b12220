package provider

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// BenchmarkMessages measures messages through the whole path between two providers on
// loopback: an envelope on the sender's mimi.out, encryption from the sender's leaf, submit to
// the hub (locally or over mutual TLS), hub sequencing and fanout (outbox → /notify), the
// receiver's inbox, decryption once per room, and the envelope on the receiver's mimi.in.
// ns/op is per message with b.N messages in flight.
func BenchmarkMessages(b *testing.B) {
	for _, dir := range []string{"hub_to_follower", "follower_to_hub"} {
		b.Run(dir, func(b *testing.B) {
			a, bn := pair(b)
			alice, bob, room := invited(b, a, bn)
			from, to, sender := a, bn, alice
			if dir == "follower_to_hub" {
				from, to, sender = bn, a, bob
			}
			msgs := make([]*event.Envelope, b.N)
			for i := range msgs {
				msgs[i] = message(b, room, sender, fmt.Sprintf("benchmark message %d", i))
			}
			b.ResetTimer()
			start := time.Now()
			for _, m := range msgs {
				publishOut(b, from, m)
			}
			for range b.N {
				expect(b, to, "message", func(e *event.Envelope) bool { return e.Kind == event.KindMessage })
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// BenchmarkMessagesManyRooms measures aggregate throughput across rooms: the path of
// BenchmarkMessages (hub → follower), with the b.N messages spread round-robin over 1, 8, 32 or
// 1,000 rooms (two members each), and the buses partitioned as the gateway's default
// (bus.DefaultPartitions). Every room's messages must arrive in the order they were sent. The
// offered sub-benchmark paces the publisher at 500 messages per second over 32 rooms, for the
// latency under a steady load. It reports msgs/s, cpu-ms/msg (process CPU time), p50-ms and
// p99-ms (publish to the receiver's mimi.in), tx/msg (store transactions committed on both sides
// per message), fsync/msg (fsync and fdatasync calls of the process, where perf events are
// permitted), necessary-ms/msg (one Encrypt and one Process on copies of the first room's
// states, as in BenchmarkMessagesGroupSize) and ratio (cpu-ms/msg over necessary-ms/msg).
//
// Building 1,000 rooms claims 1,000 of Bob's KeyPackages from one partner: both servers' claim
// rate limits are lifted for the benchmark (they bound a partner's claims, not messages). With
// MIMI_BENCH_CPUPROFILE set to a path prefix, the timed part is CPU profiled to
// <prefix>-rooms<n>[-offered<r>].pprof. Run rooms=1000 with -benchtime of at least 2000x.
func BenchmarkMessagesManyRooms(b *testing.B) {
	for _, c := range []struct {
		rooms int
		rate  float64
	}{{1, 0}, {8, 0}, {32, 0}, {32, 500}, {1000, 0}} {
		b.Run(roomsName(c.rooms, c.rate), func(b *testing.B) {
			a, bn := pairOn(b, storetest.SQLiteConfig, func(c *bus.Config) { c.Partitions = bus.DefaultPartitions })
			if c.rooms > 8 {
				for _, nd := range []*node{a, bn} {
					nd.tp.Reconfigure(b, unlimitedClaims)
				}
			}
			rooms := make([]event.RoomURI, c.rooms)
			var alice, bob event.UserURI
			for i := range rooms {
				alice, bob, rooms[i] = invited(b, a, bn)
			}
			msgs, _ := spread(b, rooms, alice, b.N)
			runtime.GC()
			name := fmt.Sprintf("rooms%d", c.rooms)
			if c.rate > 0 {
				name += fmt.Sprintf("-offered%g", c.rate)
			}
			stop := cpuProfile(b, name)
			b.ResetTimer()
			r := flow(b, a, bn, msgs, c.rate)
			b.StopTimer()
			stop()
			r.report(b, b.N)
			if need := necessaryWork(b, a, bn, rooms[0], alice, bob); need > 0 && r.cpu > 0 {
				b.ReportMetric(need, "necessary-ms/msg")
				b.ReportMetric(float64(r.cpu)/float64(b.N)/1e6/need, "ratio")
			}
		})
	}
}

// unlimitedClaims lifts a server's KeyPackage claim rate limits (per partner and per target
// user) for benchmarks that build many rooms with one partner user.
func unlimitedClaims(c *protocol.ServerConfig) {
	lift := protocol.RateLimit{Interval: time.Microsecond, Burst: 1 << 20}
	c.KeyMaterialPartnerRate, c.KeyMaterialTargetRate = lift, lift
}
