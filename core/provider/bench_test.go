package provider

import (
	"fmt"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
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
