// Package txnbatch is the group commit of the Matrix adapter's appservice ingress. A
// transaction carries several events, and the homeserver learns that they are handled only
// from its answer: the plain messages among them (no reply, edit, redaction or reaction:
// nothing that refers to another event) are published as one bridges.Batch, so that the
// transaction costs one atomic bus batch and two store commits (the mappings before
// publishing, the dedupe marks after), not a sync and two commits per event. Any other event
// (state, membership, redactions, reactions, replies, edits, commands, management rooms) first
// makes the batch durable (Flush) and is then handled as before, so it never overtakes a
// message of the batch nor misses its mapping. The transaction is answered only once
// everything is durable; after a failure the homeserver sends it again, and its events dedupe
// by envelope ID and dedupe mark. (The bot's sync brings the same events one at a time, each
// durable before the next: whichever comes second is a duplicate.)
package txnbatch

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	mevent "maunium.net/go/mautrix/event"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/mxevent"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// Config is the adapter's side of a transaction's ingest.
type Config struct {
	// Core makes the batches.
	Core *bridges.Core
	// Lock (the adapter's ingest lock) is held while a transaction's events are ingested.
	Lock sync.Locker
	// Decode parses one raw event; false: it is skipped (Decode logs and counts it).
	Decode func(raw json.RawMessage) (*mevent.Event, bool)
	// Ingest ingests one event, Lock held: with Add for a plain message's envelope, after Flush
	// for anything else it publishes or that refers to another event.
	Ingest func(ctx context.Context, evt *mevent.Event) error
	// Failed marks the error of a batch that could not be made durable (the adapter's "try
	// again later").
	Failed func(error) error
}

// batch is the batch of the transaction being ingested, in the context of its events.
type batch struct {
	b      *bridges.Batch
	done   []func()
	failed func(error) error
}

type key struct{}

// Transaction ingests the events of one transaction, in order, and returns once all of them
// are durable (asapi.Config.Events); on failure, the index of the event that failed (-1: the
// batch).
func (c Config) Transaction(ctx context.Context, raws []json.RawMessage) (int, error) {
	evts := make([]*mevent.Event, 0, len(raws))
	index := make([]int, 0, len(raws))
	for i, raw := range raws {
		if evt, ok := c.Decode(raw); ok {
			evts = append(evts, evt)
			index = append(index, i)
		}
	}
	c.Lock.Lock()
	defer c.Lock.Unlock()
	ctx = context.WithValue(ctx, key{}, &batch{b: c.Core.NewBatch(), failed: c.Failed})
	for i, evt := range evts {
		if evt.Type != mevent.EventMessage && evt.Type != mevent.EventEncrypted {
			if err := Flush(ctx); err != nil {
				return -1, err
			}
		}
		if err := c.Ingest(ctx, evt); err != nil {
			return index[i], err
		}
	}
	if err := Flush(ctx); err != nil {
		return -1, err
	}
	return 0, nil
}

// Plain reports whether p is a message that refers to no other event (no reply, edit,
// redaction or reaction): one that can join a batch.
func Plain(p *mxevent.Parsed) bool {
	return p.Kind == event.KindMessage && p.ReplyTo == "" && p.Target == ""
}

// Add adds env, the envelope of p, with rec to the transaction batch of ctx when there is one
// and p is a plain message; published runs once the batch is durable. False: the caller
// publishes it itself, after Flush.
func Add(ctx context.Context, p *mxevent.Parsed, env *event.Envelope, rec bridges.Record, published func()) bool {
	tb, _ := ctx.Value(key{}).(*batch)
	if tb == nil || !Plain(p) {
		return false
	}
	tb.b.Add(env, rec)
	tb.done = append(tb.done, published)
	return true
}

// Flush makes the transaction batch of ctx (if any) durable.
func Flush(ctx context.Context) error {
	tb, _ := ctx.Value(key{}).(*batch)
	if tb == nil || tb.b.Len() == 0 {
		return nil
	}
	done := tb.done
	tb.done = nil
	if err := tb.b.Flush(ctx); err != nil {
		return tb.failed(fmt.Errorf("matrix: publish %d events: %w", len(done), err))
	}
	for _, f := range done {
		f()
	}
	return nil
}
