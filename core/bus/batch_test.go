package bus

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// TestPublishInBatch publishes envelopes of three rooms for two networks in one pipelined batch:
// each network's adapter gets its envelopes once, each room's in order; the same batch again
// stores nothing new (the envelope IDs deduplicate); a batch with an invalid entry fails.
func TestPublishInBatch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, cfg Config) {
		b := openBus(t, cfg)
		ctx := ctxT(t)
		recs := map[event.Network]*recorder{event.NetworkMatrix: newRecorder(), event.NetworkXMPP: newRecorder()}
		for n, r := range recs {
			s, err := b.ConsumeIn(ctx, "adapter", n, func(_ context.Context, d Delivery) error { r.add(d); return nil })
			if err != nil {
				t.Fatal(err)
			}
			defer stopSub(t, s)
		}
		var msgs []InMessage
		for i := range 60 {
			n := event.NetworkMatrix
			if i%4 == 0 {
				n = event.NetworkXMPP
			}
			msgs = append(msgs, InMessage{Network: n, Envelope: testEnvelope(testRoom(i%3), fmt.Sprint("batch-", i), nil)})
		}
		if err := b.PublishInBatch(ctx, msgs); err != nil {
			t.Fatal(err)
		}
		if err := b.PublishInBatch(ctx, msgs); err != nil {
			t.Fatalf("the same batch again: %v", err)
		}
		for _, m := range msgs {
			recs[m.Network].waitCount(t, m.Envelope.ID, 1)
		}
		for n, r := range recs {
			last := map[event.RoomURI]int{}
			for _, d := range r.snapshot() {
				var i int
				fmt.Sscanf(string(d.Envelope.Origin.Event), "batch-%d", &i)
				if prev, ok := last[d.Envelope.Room]; ok && i <= prev {
					t.Fatalf("%s: room %s got batch-%d after batch-%d", n, d.Envelope.Room, i, prev)
				}
				last[d.Envelope.Room] = i
			}
		}
		checkFor(t, 2*time.Second, 100*time.Millisecond, func() error {
			if got := recs[event.NetworkMatrix].len() + recs[event.NetworkXMPP].len(); got != len(msgs) {
				return fmt.Errorf("%d deliveries, want %d", got, len(msgs))
			}
			return nil
		})
		bad := append(msgs[:1:1], InMessage{Network: "", Envelope: testEnvelope(testRoom(0), "bad", nil)})
		if err := b.PublishInBatch(ctx, bad); err == nil {
			t.Fatal("a batch with an invalid network published")
		}
	})
}
