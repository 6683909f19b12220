package bus

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

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

// TestPublishInBatchFailureKeepsRoomOrder: the first envelope of a room fails to publish (here
// the stream refuses its size; in production the stream had no leader for a moment after a NATS
// node died) while the room's second one is in the same batch. The second must not be stored
// before the first: publishing the batch again (as the provider's inbox does) then stores the
// first after the second, which is the reorder TestScaleOutKillNATSNode saw on A's mimi.in.
// Another room of the batch goes on. The stream's own order is read, not a consumer's.
func TestPublishInBatchFailureKeepsRoomOrder(t *testing.T) {
	forEachBackend(t, func(t *testing.T, cfg Config) {
		b := openBus(t, cfg)
		ctx := ctxT(t)
		setMaxMsgSize := func(n int32) {
			t.Helper()
			s, err := b.js.Stream(ctx, StreamIn)
			if err != nil {
				t.Fatal(err)
			}
			sc := s.CachedInfo().Config
			sc.MaxMsgSize = n
			if _, err := b.js.UpdateStream(ctx, sc); err != nil {
				t.Fatalf("max_msg_size %d: %v", n, err)
			}
		}
		// mimi.in keeps messages while a consumer is interested: one that never acknowledges.
		if _, err := b.js.CreateConsumer(ctx, StreamIn, jetstream.ConsumerConfig{Durable: "order-check", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
			t.Fatal(err)
		}
		big := []byte(strings.Repeat("x", 8192))
		msgs := []InMessage{
			{Network: event.NetworkMatrix, Envelope: testEnvelope(testRoom(0), "r0-1", big)},
			{Network: event.NetworkMatrix, Envelope: testEnvelope(testRoom(1), "r1-1", nil)},
			{Network: event.NetworkMatrix, Envelope: testEnvelope(testRoom(0), "r0-2", nil)},
			{Network: event.NetworkMatrix, Envelope: testEnvelope(testRoom(1), "r1-2", nil)},
		}
		setMaxMsgSize(4096)
		if err := b.PublishInBatch(ctx, msgs); err == nil {
			t.Fatal("an envelope larger than the stream's max_msg_size was published")
		}
		if got, want := streamOrder(t, b), []string{"r1-1", "r1-2"}; !slices.Equal(got, want) {
			t.Fatalf("after the failed batch the stream holds %v, want %v (room 0's second envelope waits for its first)", got, want)
		}
		setMaxMsgSize(-1)
		if err := b.PublishInBatch(ctx, msgs); err != nil {
			t.Fatalf("the batch again: %v", err)
		}
		if got, want := streamOrder(t, b), []string{"r1-1", "r1-2", "r0-1", "r0-2"}; !slices.Equal(got, want) {
			t.Fatalf("stream holds %v, want %v", got, want)
		}
	})
}

// streamOrder returns the native event IDs of mimi.in's messages in stream order.
func streamOrder(t *testing.T, b *NATS) []string {
	t.Helper()
	return streamOrderOf(t, b, StreamIn)
}

// streamOrderOf returns the native event IDs of stream's messages in stream order.
func streamOrderOf(t *testing.T, b *NATS, stream string) []string {
	t.Helper()
	ctx := ctxT(t)
	s, err := b.js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("stream message %d: %v", seq, err)
		}
		env, err := event.Unmarshal(m.Data)
		if err != nil {
			t.Fatalf("stream message %d: %v", seq, err)
		}
		ids = append(ids, string(env.Origin.Event))
	}
	return ids
}
