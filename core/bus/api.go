// Package bus carries canonical envelopes (core/event) between the network adapters and the MIMI
// endpoint over NATS JetStream: an embedded nats-server by default, or an external cluster.
//
// Two directions, each a stream:
//
//	mimi.out.<room-token>            legacy → MIMI: adapters publish, the endpoint consumes
//	mimi.in.<network>.<room-token>   MIMI → legacy: the endpoint publishes, one adapter per network consumes
//
// Publishing returns only after JetStream has stored the message, with the envelope ID as
// Nats-Msg-Id so that a republished event is stored once while the stream still holds the first
// copy (an acknowledged message is removed at once, see NATS). Consumers are durable pull consumers with
// explicit acks; a handler error means "retry later" (redelivery with backoff), and after the
// configured maximum number of deliveries the message goes to the dead-letter subject. Messages of
// one room are handled in order, one at a time; different rooms proceed in parallel.
//
// Delivery is at least once: a message acked just before a crash can come again, so handlers must be
// idempotent (dedupe by envelope ID in the store, see core/store).
package bus

import (
	"context"
	"errors"
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// Subject prefixes.
const (
	subjectOutPrefix = "mimi.out."
	subjectInPrefix  = "mimi.in."
	// SubjectDeadLetterPrefix is where messages go after too many failed deliveries:
	// mimi.dlq.<original subject>.
	SubjectDeadLetterPrefix = "mimi.dlq."
)

// SubjectOut is the subject of a legacy → MIMI envelope for room.
func SubjectOut(room event.RoomURI) string { return subjectOutPrefix + room.Token() }

// SubjectIn is the subject of a MIMI → legacy envelope for room, addressed to network's adapter.
func SubjectIn(n event.Network, room event.RoomURI) string {
	return subjectInPrefix + string(n) + "." + room.Token()
}

// ErrPermanent marks a handler error that retrying cannot fix (a malformed envelope, a message for a
// room that does not exist). Wrap it (fmt.Errorf("...: %w", bus.ErrPermanent) or bus.Permanent(err))
// and the message goes to the dead-letter subject at once instead of being redelivered.
var ErrPermanent = errors.New("bus: permanent failure")

// Permanent wraps err so that the bus dead-letters the message instead of redelivering it.
func Permanent(err error) error { return fmt.Errorf("%w: %w", ErrPermanent, err) }

// Delivery is one message handed to a Handler.
type Delivery struct {
	// Envelope is the decoded, validated envelope.
	Envelope *event.Envelope
	// Subject is the NATS subject the message was published on.
	Subject string
	// NumDelivered counts deliveries of this message, starting at 1.
	NumDelivered uint64
	// StreamSeq is the message's sequence number in its stream.
	StreamSeq uint64
	// Final is true on the last delivery the bus makes (Config.MaxDeliveries): if the handler
	// fails again, the message is dead-lettered, so this is when the handler tells whoever waits
	// for it.
	Final bool
}

// Handler processes one delivery. Returning nil acknowledges the message; returning an error asks
// for redelivery later (with backoff), unless it wraps ErrPermanent.
type Handler func(ctx context.Context, d Delivery) error

// Publisher publishes envelopes durably.
type Publisher interface {
	// PublishOut publishes a legacy → MIMI envelope on SubjectOut(env.Room). It returns after the
	// stream stored it; a duplicate (same env.ID within the dedupe window) is not an error.
	PublishOut(ctx context.Context, env *event.Envelope) error
	// PublishIn publishes a MIMI → legacy envelope for network n on SubjectIn(n, env.Room).
	PublishIn(ctx context.Context, n event.Network, env *event.Envelope) error
}

// Subscriber starts durable consumers.
type Subscriber interface {
	// ConsumeOut starts the durable consumer called name on all mimi.out subjects.
	ConsumeOut(ctx context.Context, name string, h Handler) (Subscription, error)
	// ConsumeIn starts the durable consumer called name on network n's mimi.in subjects.
	ConsumeIn(ctx context.Context, name string, n event.Network, h Handler) (Subscription, error)
}

// Subscription is a running consumer.
type Subscription interface {
	// Stop stops fetching new messages, waits for handlers in progress to finish (or ctx to end),
	// and leaves unacknowledged messages for redelivery.
	Stop(ctx context.Context) error
}

// Bus is the complete bus client.
type Bus interface {
	Publisher
	Subscriber
	// Ready reports whether the bus is connected and its streams exist.
	Ready(ctx context.Context) error
	// Close drains consumers and the connection and, in embedded mode, shuts the server down.
	Close(ctx context.Context) error
}
