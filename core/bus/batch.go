package bus

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// InMessage is one MIMI → legacy envelope for a network's adapter.
type InMessage struct {
	Network  event.Network
	Envelope *event.Envelope
}

// BatchPublisher is an optional Publisher capability: several envelopes published pipelined,
// every one sent before any acknowledgement is awaited, so a batch costs one round trip instead
// of one per envelope (each is still stored, and with sync_always synced, before JetStream
// acknowledges it).
type BatchPublisher interface {
	// PublishInBatch publishes each message as PublishIn does and returns once the stream
	// stored all of them, or the first error (some may have been stored then: publishing
	// again is harmless, the envelope IDs deduplicate).
	PublishInBatch(ctx context.Context, msgs []InMessage) error
}

var _ BatchPublisher = (*NATS)(nil)

// PublishInBatch implements BatchPublisher.
func (b *NATS) PublishInBatch(ctx context.Context, msgs []InMessage) error {
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	var sendErr error
	for _, m := range msgs {
		if m.Envelope == nil || !m.Network.Valid() {
			sendErr = fmt.Errorf("bus: publish in: nil envelope or invalid network %q", m.Network)
			break
		}
		data, err := event.Marshal(m.Envelope)
		if err != nil {
			sendErr = fmt.Errorf("bus: publish in: %w", err)
			break
		}
		msg := &nats.Msg{Subject: SubjectIn(m.Network, m.Envelope.Room), Data: data, Header: nats.Header{}}
		f, err := b.js.PublishMsgAsync(msg, jetstream.WithMsgID(string(m.Envelope.ID)), jetstream.WithExpectStream(StreamIn))
		if err != nil {
			b.met.publishErrs.WithLabelValues("in", string(m.Network)).Inc()
			sendErr = fmt.Errorf("bus: publish in %s: %w", m.Envelope.ID, err)
			break
		}
		futures = append(futures, f)
	}
	// Wait for what was sent even after a send error, so no acknowledgement is left behind.
	var errs []error
	for i, f := range futures {
		n := string(msgs[i].Network)
		select {
		case ack := <-f.Ok():
			if ack.Duplicate {
				b.met.duplicates.WithLabelValues("in", n).Inc()
			} else {
				b.met.published.WithLabelValues("in", n).Inc()
			}
		case err := <-f.Err():
			b.met.publishErrs.WithLabelValues("in", n).Inc()
			errs = append(errs, fmt.Errorf("bus: publish in %s: %w", msgs[i].Envelope.ID, err))
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return errors.Join(append([]error{sendErr}, errs...)...)
}
