package xmpp

import (
	"context"
	"slices"
	"strings"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xhistory"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xstanza"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// Group commit of the ingress. A component connection delivers a conversation's stanzas in
// order, and a worker handles a conversation's stanzas in that order; when several plain
// messages (groupchat messages to rooms, chat messages to puppets) are queued for a worker at
// once, it bridges them as one batch: their envelopes go onto the bus together (one atomic
// batch, one sync of the stream), their ID mappings and history entries are written in one
// store transaction, and only then is each reflected to the room or answered with its
// delivery receipt (the XMPP sender's acknowledgement), or refused with an error. Anything
// that is not a plain new message (a correction, retraction, reaction, receipt, reply, subject,
// invite, presence, command, a resent ID) waits until the batch is durable and is handled
// as before, so it never overtakes nor misses a message of the batch.

// maxIngressBatch bounds the stanzas a worker takes from its queue for one batch.
const maxIngressBatch = 64

// ingress is a worker's batch of room messages being bridged. The zero of *ingress (nil) is no
// batch: every method then does nothing and messages are bridged one at a time.
type ingress struct {
	a     *Adapter
	b     *bridges.Batch
	ids   map[string]bool // sender and native ID of each message in the batch
	kinds []event.Kind
	done  []func(ctx context.Context, err error)
	hist  []event.RoomURI // rooms with history entries in the batch, to prune once each
}

func (a *Adapter) newIngress() *ingress {
	return &ingress{a: a, b: a.core.NewBatch(), ids: map[string]bool{}}
}

// history adds a room history entry of the message added last to the batch's transaction; the
// room's history is pruned once at the end of the batch.
func (in *ingress) history(room event.RoomURI, h xhistory.Entry) {
	a := in.a
	if *a.cfg.HistoryKeep <= 0 {
		return
	}
	in.b.AddTx(func(ctx context.Context, tx *store.Tx) error { return a.hist.InsertTx(ctx, tx, room, h) })
	if !slices.Contains(in.hist, room) {
		in.hist = append(in.hist, room)
	}
}

// batchable reports whether m is a plain new message (a groupchat message to a room when muc,
// else a chat or normal message to a puppet): one that refers to no other message, so that it
// can join a batch.
func batchable(m *xstanza.InMessage, muc bool) bool {
	body, ok := m.Text()
	if muc != (m.Type == "groupchat") || m.Type == "error" || m.Type == "headline" {
		return false
	}
	return ok && strings.TrimSpace(body) != "" && m.Subject == nil &&
		(m.MUCUser == nil || len(m.MUCUser.Invite) == 0) && m.OMEMO == nil && m.OMEMO2 == nil &&
		m.Retract == nil && m.Replace == nil && m.Reactions == nil && m.Reply == nil && len(m.OOB) == 0 &&
		m.Received == nil && m.Displayed == nil && m.MarkReceived == nil
}

// len is the number of messages in the batch.
func (in *ingress) len() int {
	if in == nil {
		return 0
	}
	return in.b.Len()
}

// has reports whether the sender's native ID is in the batch already (a stanza sent twice).
func (in *ingress) has(o origin, nativeID string) bool {
	return in != nil && in.ids[o.sender.String()+" "+nativeID]
}

// add adds a message: its envelope and what records it.
func (in *ingress) add(o origin, nativeID string, env *event.Envelope, rec bridges.Record) {
	in.ids[o.sender.String()+" "+nativeID] = true
	in.kinds = append(in.kinds, env.Kind)
	in.done = append(in.done, nil)
	in.b.Add(env, rec)
}

// then sets what happens to the message added last once the batch is durable (err nil) or
// failed.
func (in *ingress) then(done func(ctx context.Context, err error)) {
	in.done[len(in.done)-1] = done
}

// flush makes the batch durable and settles each of its messages.
func (in *ingress) flush(ctx context.Context) {
	if in.len() == 0 {
		return
	}
	for _, room := range in.hist {
		in.b.AddTx(func(ctx context.Context, tx *store.Tx) error {
			return in.a.hist.PruneTx(ctx, tx, room, *in.a.cfg.HistoryKeep)
		})
	}
	err := in.b.Flush(ctx)
	done, kinds := in.done, in.kinds
	in.done, in.kinds, in.hist = nil, nil, nil
	clear(in.ids)
	if err == nil {
		for _, k := range kinds {
			in.a.met.published.WithLabelValues(k.String()).Inc()
		}
	}
	for _, d := range done {
		if d != nil {
			d(ctx, err)
		}
	}
}
