package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// OutBatchPublisher is an optional Publisher capability: several legacy → MIMI envelopes (of
// one or several rooms) stored together, for an adapter that has several native events in hand
// at once (a component connection's queued stanzas, an appservice transaction).
type OutBatchPublisher interface {
	// PublishOutBatch publishes envs as PublishOut does, in their order, and returns once the
	// stream stored all of them (a duplicate is not an error), or with an error; after an error
	// any of them may be stored, and publishing them again stores none twice while the stream's
	// dedupe window holds the IDs (consumers also dedupe by event ID).
	PublishOutBatch(ctx context.Context, envs []*event.Envelope) error
}

var _ OutBatchPublisher = (*NATS)(nil)

// maxOutBatch bounds the envelopes of one atomic batch (the server's default limit is 1,000).
const maxOutBatch = 256

// Atomic batch publish headers (nats-server 2.12 and later, ADR-50).
const (
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"
)

// PublishOutBatch implements OutBatchPublisher. With the embedded server it sends up to
// maxOutBatch envelopes as one atomic batch of MIMI_OUT (AllowAtomicPublish): the server
// stores all of them or none, in their order, and with sync_always syncs them once before the
// single acknowledgement, instead of once per envelope. A batch the server refuses (one of its
// envelopes is stored already: an atomic batch with a duplicate fails as a whole; too many
// batches in flight) and every batch on an external cluster, whose servers may predate atomic
// publish, is published one envelope at a time, which deduplicates by envelope ID.
func (b *NATS) PublishOutBatch(ctx context.Context, envs []*event.Envelope) error {
	for len(envs) > 0 {
		n := min(len(envs), maxOutBatch)
		if err := b.publishOutChunk(ctx, envs[:n]); err != nil {
			return err
		}
		envs = envs[n:]
	}
	return nil
}

// publishOutChunk publishes envs atomically when it can, else one at a time.
func (b *NATS) publishOutChunk(ctx context.Context, envs []*event.Envelope) error {
	if len(envs) > 1 && b.cfg.Mode == ModeEmbedded {
		err := b.publishOutAtomic(ctx, envs)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		b.log.Debug("atomic batch refused, publishing one at a time", "envelopes", len(envs), "err", err)
	}
	for _, env := range envs {
		if err := b.PublishOut(ctx, env); err != nil {
			return err
		}
	}
	return nil
}

// publishOutAtomic sends envs as one atomic batch: every message but the last without a reply
// (the server reports a gap or a refused message on the commit), the last with the commit
// header, waiting for the batch's acknowledgement. Every envelope is encoded before the first
// is sent, so a bad one leaves no unfinished batch on the server.
func (b *NATS) publishOutAtomic(ctx context.Context, envs []*event.Envelope) error {
	id := nuid.Next()
	msgs := make([]*nats.Msg, len(envs))
	for i, env := range envs {
		if env == nil {
			return errors.New("bus: publish out batch: nil envelope")
		}
		data, err := event.Marshal(env)
		if err != nil {
			return fmt.Errorf("bus: publish out batch: %w", err)
		}
		msg := &nats.Msg{Subject: SubjectOut(env.Room), Data: data, Header: nats.Header{}}
		msg.Header.Set(hdrBatchID, id)
		msg.Header.Set(hdrBatchSeq, strconv.Itoa(i+1))
		msgs[i] = msg
	}
	last := len(msgs) - 1
	for i, msg := range msgs[:last] {
		msg.Header.Set(jetstream.MsgIDHeader, string(envs[i].ID))
		msg.Header.Set(jetstream.ExpectedStreamHeader, StreamOut)
		if err := b.nc.PublishMsg(msg); err != nil {
			return fmt.Errorf("bus: publish out batch %s: %w", envs[i].ID, err)
		}
	}
	msgs[last].Header.Set(hdrBatchCommit, "1")
	if _, err := b.js.PublishMsg(ctx, msgs[last], jetstream.WithMsgID(string(envs[last].ID)), jetstream.WithExpectStream(StreamOut)); err != nil {
		return fmt.Errorf("bus: publish out batch of %d ending with %s: %w", len(envs), envs[last].ID, err)
	}
	for _, env := range envs {
		b.met.published.WithLabelValues("out", networkLabel(env.Origin.Network)).Inc()
	}
	return nil
}

// networkLabel is n as a metric label.
func networkLabel(n event.Network) string {
	if !n.Valid() {
		return "unknown"
	}
	return string(n)
}
