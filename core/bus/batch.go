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

// BatchPublisher is an optional Publisher capability: several envelopes published pipelined
// across rooms, so a batch costs one round trip per envelope of its busiest room instead of one
// per envelope (each is still stored, and with sync_always synced, before JetStream
// acknowledges it).
type BatchPublisher interface {
	// PublishInBatch publishes each message as PublishIn does and returns once the stream
	// stored all of them, or with the errors. The messages of one room (one subject) keep their
	// order: one is sent only once the stream confirmed the one before it, and after a failure
	// the room's later messages are not sent, so publishing the batch again (the envelope IDs
	// deduplicate what was stored) never stores a room's message after its successor.
	PublishInBatch(ctx context.Context, msgs []InMessage) error
}

var _ BatchPublisher = (*NATS)(nil)

// pending is one message of PublishInBatch waiting for its turn in its subject's queue.
type pending struct {
	msg *nats.Msg
	in  InMessage
}

// PublishInBatch implements BatchPublisher. It sends in rounds: each round sends the oldest
// unconfirmed message of every subject (pipelined) and waits for their acknowledgements. A
// JetStream publish can fail or be retried on its own (the stream's leader is being elected: no
// responders, retried by the client after a pause), so two messages of one subject in flight at
// once could be stored the wrong way round.
func (b *NATS) PublishInBatch(ctx context.Context, msgs []InMessage) error {
	var (
		queues  = map[string][]pending{}
		order   []string // subjects in the order of their first message
		sendErr error
	)
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
		subj := SubjectIn(m.Network, m.Envelope.Room)
		if _, ok := queues[subj]; !ok {
			order = append(order, subj)
		}
		queues[subj] = append(queues[subj], pending{msg: &nats.Msg{Subject: subj, Data: data, Header: nats.Header{}}, in: m})
	}
	errs := []error{sendErr}
	for len(order) > 0 {
		next, err := b.publishRound(ctx, queues, order)
		if err != nil {
			errs = append(errs, err)
		}
		if ctx.Err() != nil {
			return errors.Join(append(errs, ctx.Err())...)
		}
		order = next
	}
	return errors.Join(errs...)
}

// publishRound sends the head of each subject's queue, pipelined, waits for every
// acknowledgement and returns the subjects to go on with: those whose head was stored and that
// have more. A subject whose head failed is dropped with the rest of its queue.
func (b *NATS) publishRound(ctx context.Context, queues map[string][]pending, order []string) ([]string, error) {
	type sent struct {
		subj string
		f    jetstream.PubAckFuture
	}
	var (
		inFlight = make([]sent, 0, len(order))
		errs     []error
	)
	for _, subj := range order {
		p := queues[subj][0]
		f, err := b.js.PublishMsgAsync(p.msg, jetstream.WithMsgID(string(p.in.Envelope.ID)), jetstream.WithExpectStream(StreamIn))
		if err != nil {
			b.met.publishErrs.WithLabelValues("in", string(p.in.Network)).Inc()
			errs = append(errs, fmt.Errorf("bus: publish in %s: %w", p.in.Envelope.ID, err))
			continue
		}
		inFlight = append(inFlight, sent{subj, f})
	}
	// Wait for everything sent, even after an error, so no acknowledgement is left behind.
	var next []string
	for _, s := range inFlight {
		p := queues[s.subj][0]
		n := string(p.in.Network)
		select {
		case ack := <-s.f.Ok():
			if ack.Duplicate {
				b.met.duplicates.WithLabelValues("in", n).Inc()
			} else {
				b.met.published.WithLabelValues("in", n).Inc()
			}
			if rest := queues[s.subj][1:]; len(rest) > 0 {
				queues[s.subj] = rest
				next = append(next, s.subj)
			}
		case err := <-s.f.Err():
			b.met.publishErrs.WithLabelValues("in", n).Inc()
			errs = append(errs, fmt.Errorf("bus: publish in %s: %w", p.in.Envelope.ID, err))
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return next, errors.Join(errs...)
}
