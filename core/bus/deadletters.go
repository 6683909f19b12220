package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// DeadLetter describes one message in the dead-letter stream by its metadata: where it came
// from, why it was given up, and what the envelope says about itself. It never carries the
// message's content, so it can be shown to operators and printed by tools.
type DeadLetter struct {
	// Seq is the dead letter's sequence number in StreamDeadLetter; it names the dead letter
	// in GetDeadLetter, ReplayDeadLetter and DiscardDeadLetter.
	Seq uint64 `json:"seq"`
	// Time is when the message was dead-lettered.
	Time time.Time `json:"time"`
	// Subject is the subject the original was published on (mimi.out.<room> or mimi.in.<net>.<room>).
	Subject string `json:"subject"`
	// Reason is one of DLQPermanent, DLQMaxDeliveries, DLQUndecodable.
	Reason string `json:"reason"`
	// Error is the last handler or decoding error (at most 1 KiB).
	Error string `json:"error,omitempty"`
	// Consumer is the durable consumer that gave up.
	Consumer string `json:"consumer,omitempty"`
	// Stream and StreamSeq locate the original in its stream.
	Stream    string `json:"stream,omitempty"`
	StreamSeq uint64 `json:"stream_seq,omitempty"`
	// Deliveries is how many times the original was delivered.
	Deliveries uint64 `json:"deliveries,omitempty"`
	// MsgID is the original's Nats-Msg-Id (the envelope ID).
	MsgID string `json:"msg_id,omitempty"`
	// Size is the size of the stored data in bytes.
	Size int `json:"size"`
	// Envelope is the decoded envelope's metadata, nil if the data is not a valid envelope.
	Envelope *EnvelopeMeta `json:"envelope,omitempty"`
	// DecodeError says why Envelope is nil.
	DecodeError string `json:"decode_error,omitempty"`
}

// EnvelopeMeta is what an envelope says about itself, without its content, membership or
// metadata payloads.
type EnvelopeMeta struct {
	ID          event.EventID `json:"id"`
	Kind        string        `json:"kind"`
	Room        event.RoomURI `json:"room"`
	Sender      event.UserURI `json:"sender,omitempty"`
	Network     event.Network `json:"network,omitempty"`
	Timestamp   time.Time     `json:"timestamp"`
	ContentSize int           `json:"content_size"`
}

// ErrDeadLetterNotFound is returned for a sequence number that names no dead letter (never
// stored, discarded, replayed or expired).
var ErrDeadLetterNotFound = errors.New("bus: dead letter not found")

// MaxDeadLetterList bounds one ListDeadLetters page.
const MaxDeadLetterList = 500

// DeadLetters is the operations on the dead-letter stream that the admin console and the admin
// CLI use. *NATS implements it.
type DeadLetters interface {
	// ListDeadLetters returns up to limit dead letters with sequence numbers from after+1 on,
	// oldest first.
	ListDeadLetters(ctx context.Context, after uint64, limit int) ([]DeadLetter, error)
	// GetDeadLetter returns one dead letter's metadata.
	GetDeadLetter(ctx context.Context, seq uint64) (DeadLetter, error)
	// ReplayDeadLetter publishes the original data again on its original subject and then
	// removes the dead letter.
	ReplayDeadLetter(ctx context.Context, seq uint64) error
	// DiscardDeadLetter removes the dead letter without publishing it.
	DiscardDeadLetter(ctx context.Context, seq uint64) error
	// DeadLetterCount returns the number of dead letters stored.
	DeadLetterCount(ctx context.Context) (uint64, error)
}

var _ DeadLetters = (*NATS)(nil)

// ListDeadLetters implements DeadLetters.
func (b *NATS) ListDeadLetters(ctx context.Context, after uint64, limit int) ([]DeadLetter, error) {
	if limit <= 0 || limit > MaxDeadLetterList {
		limit = MaxDeadLetterList
	}
	s, err := b.js.Stream(ctx, StreamDeadLetter)
	if err != nil {
		return nil, fmt.Errorf("bus: dead letters: %w", err)
	}
	var out []DeadLetter
	for seq := after + 1; len(out) < limit; {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(SubjectDeadLetterPrefix+">"))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return out, fmt.Errorf("bus: dead letters from %d: %w", seq, err)
		}
		out = append(out, b.describeDeadLetter(m))
		seq = m.Sequence + 1
	}
	return out, nil
}

// GetDeadLetter implements DeadLetters.
func (b *NATS) GetDeadLetter(ctx context.Context, seq uint64) (DeadLetter, error) {
	m, err := b.deadLetterMsg(ctx, seq)
	if err != nil {
		return DeadLetter{}, err
	}
	return b.describeDeadLetter(m), nil
}

// ReplayDeadLetter implements DeadLetters. The copy is published with the Nats-Msg-Id
// "<original id>/replay/<seq>" (or "dlq-replay/<seq>" for an original without one), so a replay
// repeated after a crash between publish and removal is stored once; the consumers' dedupe by
// envelope ID in the store is unaffected, since a dead-lettered envelope was never processed.
func (b *NATS) ReplayDeadLetter(ctx context.Context, seq uint64) error {
	m, err := b.deadLetterMsg(ctx, seq)
	if err != nil {
		return err
	}
	orig := m.Header.Get(HeaderDLQSubject)
	if orig == "" {
		orig = strings.TrimPrefix(m.Subject, SubjectDeadLetterPrefix)
	}
	var stream string
	switch {
	case strings.HasPrefix(orig, subjectOutPrefix):
		stream = StreamOut
	case strings.HasPrefix(orig, subjectInPrefix):
		stream = StreamIn
	default:
		return fmt.Errorf("bus: dead letter %d: original subject %q is not a mimi.out or mimi.in subject", seq, orig)
	}
	id := "dlq-replay/" + strconv.FormatUint(seq, 10)
	if mid := m.Header.Get(HeaderDLQMsgID); mid != "" {
		id = mid + "/replay/" + strconv.FormatUint(seq, 10)
	}
	data, err := b.DeadLetterData(m.Header, m.Data)
	if err != nil {
		return fmt.Errorf("bus: replay dead letter %d: %w", seq, err)
	}
	msg := &nats.Msg{Subject: orig, Data: data, Header: nats.Header{}}
	if _, err := b.js.PublishMsg(ctx, msg, jetstream.WithMsgID(id), jetstream.WithExpectStream(stream)); err != nil {
		return fmt.Errorf("bus: replay dead letter %d on %s: %w", seq, orig, err)
	}
	b.met.replayed.Inc()
	b.log.Info("bus: dead letter replayed", "seq", seq, "subject", orig)
	if err := b.removeDeadLetter(ctx, seq); err != nil && !errors.Is(err, ErrDeadLetterNotFound) {
		return fmt.Errorf("bus: dead letter %d replayed, but not removed: %w", seq, err)
	}
	return nil
}

// DiscardDeadLetter implements DeadLetters.
func (b *NATS) DiscardDeadLetter(ctx context.Context, seq uint64) error {
	if err := b.removeDeadLetter(ctx, seq); err != nil {
		return err
	}
	b.met.discarded.Inc()
	b.log.Info("bus: dead letter discarded", "seq", seq)
	return nil
}

// DeadLetterCount implements DeadLetters.
func (b *NATS) DeadLetterCount(ctx context.Context) (uint64, error) {
	s, err := b.js.Stream(ctx, StreamDeadLetter)
	if err != nil {
		return 0, fmt.Errorf("bus: dead letters: %w", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("bus: dead letters: %w", err)
	}
	return info.State.Msgs, nil
}

func (b *NATS) deadLetterMsg(ctx context.Context, seq uint64) (*jetstream.RawStreamMsg, error) {
	if seq == 0 {
		return nil, ErrDeadLetterNotFound
	}
	s, err := b.js.Stream(ctx, StreamDeadLetter)
	if err != nil {
		return nil, fmt.Errorf("bus: dead letters: %w", err)
	}
	m, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("%w: %d", ErrDeadLetterNotFound, seq)
	}
	if err != nil {
		return nil, fmt.Errorf("bus: dead letter %d: %w", seq, err)
	}
	return m, nil
}

func (b *NATS) removeDeadLetter(ctx context.Context, seq uint64) error {
	if seq == 0 {
		return ErrDeadLetterNotFound
	}
	s, err := b.js.Stream(ctx, StreamDeadLetter)
	if err != nil {
		return fmt.Errorf("bus: dead letters: %w", err)
	}
	// Overwritten, not only unlinked: a dead letter holds (sealed) message content.
	if err := s.SecureDeleteMsg(ctx, seq); err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) || errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) {
			return fmt.Errorf("%w: %d", ErrDeadLetterNotFound, seq)
		}
		return fmt.Errorf("bus: remove dead letter %d: %w", seq, err)
	}
	return nil
}

// describeDeadLetter reads a stored dead letter's headers and the envelope's metadata (opening
// a sealed envelope).
func (b *NATS) describeDeadLetter(m *jetstream.RawStreamMsg) DeadLetter {
	h := m.Header
	num := func(k string) uint64 {
		n, _ := strconv.ParseUint(h.Get(k), 10, 64)
		return n
	}
	d := DeadLetter{
		Seq:        m.Sequence,
		Time:       m.Time.UTC(),
		Subject:    h.Get(HeaderDLQSubject),
		Reason:     h.Get(HeaderDLQReason),
		Error:      h.Get(HeaderDLQError),
		Consumer:   h.Get(HeaderDLQConsumer),
		Stream:     h.Get(HeaderDLQStream),
		StreamSeq:  num(HeaderDLQSeq),
		Deliveries: num(HeaderDLQDeliveries),
		MsgID:      h.Get(HeaderDLQMsgID),
		Size:       len(m.Data),
	}
	if d.Subject == "" {
		d.Subject = strings.TrimPrefix(m.Subject, SubjectDeadLetterPrefix)
	}
	data, err := b.DeadLetterData(h, m.Data)
	if err != nil {
		d.DecodeError = err.Error()
		return d
	}
	env, err := event.Unmarshal(data)
	if err != nil {
		d.DecodeError = err.Error()
		return d
	}
	d.Envelope = &EnvelopeMeta{
		ID: env.ID, Kind: env.Kind.String(), Room: env.Room, Sender: env.Sender,
		Network: env.Origin.Network, Timestamp: env.Timestamp.UTC(), ContentSize: len(env.Content),
	}
	return d
}
