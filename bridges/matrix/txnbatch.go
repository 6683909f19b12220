package matrix

import (
	"context"
	"encoding/json"
	"fmt"

	mevent "maunium.net/go/mautrix/event"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// Group commit of the appservice's ingress. A transaction carries several events, and the
// homeserver learns that they are handled only from its answer: the plain messages among them
// (no reply, edit, redaction or reaction: nothing that refers to another event) are published
// as one bridges.Batch, so that the transaction costs one atomic bus batch and two store
// commits (the mappings before publishing, the dedupe marks after), not a sync and two commits
// per event. Any other event (state, membership, redactions, reactions, replies, edits,
// commands, management rooms) first makes the batch durable and is then handled as before, so
// it never overtakes a message of the batch nor misses its mapping. The transaction is answered
// only once everything is durable; after a failure the homeserver sends it again, and its
// events dedupe by envelope ID and dedupe mark. (The bot's sync, catchup.go, brings the same
// events one at a time, each durable before the next: whichever comes second is a duplicate.)

// txnBatch is the batch of the appservice transaction being ingested (in the context of its
// events, under ingestMu).
type txnBatch struct {
	b      *bridges.Batch
	events []*Parsed
	envs   []*event.Envelope
}

type txnBatchKey struct{}

// ingestTransaction ingests the events of one appservice transaction, in order, and returns
// once all of them are durable (asapi.Config.Events).
func (a *Adapter) ingestTransaction(ctx context.Context, raws []json.RawMessage) (int, error) {
	evts := make([]*mevent.Event, 0, len(raws))
	index := make([]int, 0, len(raws))
	for i, raw := range raws {
		if evt, ok := a.decodeRaw(raw); ok {
			evts = append(evts, evt)
			index = append(index, i)
		}
	}
	i, err := a.ingestEvents(ctx, evts)
	if err != nil && i >= 0 {
		i = index[i]
	}
	return i, err
}

// ingestEvents ingests evts in order, as one batch, and returns once all of them are durable; on failure, the index of the event that
// failed (-1: the batch).
func (a *Adapter) ingestEvents(ctx context.Context, evts []*mevent.Event) (int, error) {
	a.ingestMu.Lock()
	defer a.ingestMu.Unlock()
	ctx = context.WithValue(ctx, txnBatchKey{}, &txnBatch{b: a.core.NewBatch()})
	for i, evt := range evts {
		if evt.Type != mevent.EventMessage && evt.Type != mevent.EventEncrypted {
			if err := a.flushTxn(ctx); err != nil {
				return -1, err
			}
		}
		if err := a.ingestEventLocked(ctx, evt); err != nil {
			return i, err
		}
	}
	if err := a.flushTxn(ctx); err != nil {
		return -1, err
	}
	return 0, nil
}

// plainMessage reports whether p is a message that refers to no other event (no reply, edit,
// redaction or reaction): one that can join a batch.
func plainMessage(p *Parsed) bool {
	return p.Kind == event.KindMessage && p.ReplyTo == "" && p.Target == ""
}

// batchOf returns the transaction batch of ctx, or nil.
func batchOf(ctx context.Context) *txnBatch {
	tb, _ := ctx.Value(txnBatchKey{}).(*txnBatch)
	return tb
}

// batched adds env, the envelope of p, with rec to the transaction batch of ctx when there is
// one and p is a plain message; false: the caller publishes it itself, after flushTxn.
func batched(ctx context.Context, p *Parsed, env *event.Envelope, rec bridges.Record) bool {
	tb := batchOf(ctx)
	if tb == nil || env.Kind != event.KindMessage || !plainMessage(p) {
		return false
	}
	tb.b.Add(env, rec)
	tb.events = append(tb.events, p)
	tb.envs = append(tb.envs, env)
	return true
}

// flushTxn makes the transaction batch of ctx (if any) durable.
func (a *Adapter) flushTxn(ctx context.Context) error {
	tb := batchOf(ctx)
	if tb == nil || tb.b.Len() == 0 {
		return nil
	}
	events, envs := tb.events, tb.envs
	tb.events, tb.envs = nil, nil
	if err := tb.b.Flush(ctx); err != nil {
		return transient(fmt.Errorf("matrix: publish %d events: %w", len(events), err))
	}
	for i, p := range events {
		a.published(p, envs[i])
	}
	return nil
}
