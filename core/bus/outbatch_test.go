package bus

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// TestPublishOutBatch publishes envelopes of three rooms in one batch and reads MIMI_OUT (kept by
// a consumer that never acknowledges): each is stored once, in the batch's order. With the
// embedded server the batch is one atomic batch. The same batch again with two new envelopes
// (an adapter retrying after a failure) stores only the new ones; a batch with an envelope the
// stream refuses stores the envelopes before it, not it nor those after it, and fails.
func TestPublishOutBatch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, cfg Config) {
		b := openBus(t, cfg)
		ctx := ctxT(t)
		if _, err := b.js.CreateConsumer(ctx, StreamOut, jetstream.ConsumerConfig{Durable: "order-check", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
			t.Fatal(err)
		}
		var envs []*event.Envelope
		var want []string
		for i := range 40 {
			id := fmt.Sprint("out-", i)
			envs = append(envs, testEnvelope(testRoom(i%3), id, nil))
			want = append(want, id)
		}
		if cfg.Mode == ModeEmbedded {
			if err := b.publishOutAtomic(ctx, envs); err != nil {
				t.Fatalf("atomic batch: %v", err)
			}
		} else if err := b.PublishOutBatch(ctx, envs); err != nil {
			t.Fatal(err)
		}
		if got := streamOrderOf(t, b, StreamOut); !slices.Equal(got, want) {
			t.Fatalf("stream holds %v, want %v", got, want)
		}
		more := append(slices.Clone(envs), testEnvelope(testRoom(0), "out-40", nil), testEnvelope(testRoom(1), "out-41", nil))
		if err := b.PublishOutBatch(ctx, more); err != nil {
			t.Fatalf("the batch again with two more: %v", err)
		}
		want = append(want, "out-40", "out-41")
		if got := streamOrderOf(t, b, StreamOut); !slices.Equal(got, want) {
			t.Fatalf("after the batch again the stream holds %v, want %v", got, want)
		}
		big := testEnvelope(testRoom(2), "out-big", []byte(strings.Repeat("x", event.MaxEnvelopeSize)))
		bad := []*event.Envelope{testEnvelope(testRoom(0), "out-42", nil), big, testEnvelope(testRoom(1), "out-43", nil)}
		if err := b.PublishOutBatch(ctx, bad); err == nil {
			t.Fatal("a batch with an oversized envelope published")
		}
		want = append(want, "out-42")
		if got := streamOrderOf(t, b, StreamOut); !slices.Equal(got, want) {
			t.Fatalf("after the refused batch the stream holds %v, want %v", got, want)
		}
	})
}
