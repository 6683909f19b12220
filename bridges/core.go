package bridges

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mimi-gateway/mimi-gateway/bridges/idmap"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// The portal core: the steps of the bridge pipeline that do not depend on the network, done
// once here instead of in every adapter.
//
// MIMI → network (Core.Handle, called by Run for every envelope on mimi.in.<network>): drop
// echoes of the adapter's own network, drop envelopes rendered before, decode the content (with
// the message-ID fallback), resolve the native messages an edit, delete, reply, reaction or
// receipt refers to, call the adapter's handler with the resolved Event, then record what the
// handler sent (the ID mapping) and mark the envelope processed in one transaction.
//
// Network → MIMI (Core.Envelope, Core.Publish): derive the content salt, build and validate the
// envelope, publish it and record its ID mappings and reactions.

// CoreConfig configures NewCore.
type CoreConfig struct {
	// Network is the adapter's network.
	Network event.Network
	// Store holds the processed-events marks and (through idmap) the ID mappings.
	Store *store.Store
	// Bus publishes network → MIMI envelopes.
	Bus bus.Publisher
	// IDVersion is the MIMI message-ID version (default content.DefaultIDVersion).
	IDVersion content.IDVersion
	// Processed is the store scope of the envelopes rendered on the network (their dedupe).
	Processed store.Scope
	// Echo, when set, is the store scope under which the native IDs of what the adapter sent and
	// published are marked, so that the adapter skips them when its network reports them back.
	Echo store.Scope
	// SaltLabel separates the adapter's content salts from other uses of its salt key; it is
	// part of every salt, so it never changes for an installed adapter.
	SaltLabel string
	// Outbound counts MIMI → network envelopes by kind and result (echo, duplicate, malformed,
	// unsupported, error, sent); nil counts nothing.
	Outbound *prometheus.CounterVec
	// Now is the clock of the ID mappings (default time.Now).
	Now func() time.Time
}

// Core is an adapter's instance of the shared pipeline. Create it with NewCore in the adapter's
// constructor and return it from the adapter's Core method.
type Core struct {
	cfg     CoreConfig
	ids     *idmap.Map
	saltKey []byte
}

// NewCore returns the core for cfg.
func NewCore(cfg CoreConfig) *Core {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.IDVersion == 0 {
		cfg.IDVersion = content.DefaultIDVersion
	}
	return &Core{cfg: cfg, ids: idmap.New(cfg.Store).WithClock(cfg.Now)}
}

// SetSaltKey sets the secret the content salts are derived from (kept by the adapter in the
// store). Call it before the adapter publishes anything.
func (c *Core) SetSaltKey(key []byte) { c.saltKey = key }

// IDs is the ID map of the core's store.
func (c *Core) IDs() *idmap.Map { return c.ids }

// Salt derives the content salt of the envelope id: HMAC-SHA-256 over the salt label and id with
// the adapter's secret, so that a native event bridged again after a crash gets byte-identical
// content and the same MIMI message ID, and nobody without the secret can predict a salt.
func (c *Core) Salt(id event.EventID) content.Salt {
	m := hmac.New(sha256.New, c.saltKey)
	m.Write([]byte(c.cfg.SaltLabel))
	m.Write([]byte(id))
	var s content.Salt
	copy(s[:], m.Sum(nil))
	return s
}

func (c *Core) count(kind event.Kind, result string) {
	if c.cfg.Outbound != nil {
		c.cfg.Outbound.WithLabelValues(kind.String(), result).Inc()
	}
}

// Count counts a MIMI → network envelope of kind with an adapter-specific result.
func (c *Core) Count(kind event.Kind, result string) { c.count(kind, result) }

// MaxReceiptEntries bounds the entries of one status report that the core resolves.
const MaxReceiptEntries = 64

// Event is a MIMI → network envelope after the core's shared steps: not an echo, not rendered
// before, its content decoded and the native messages it refers to resolved. A reference whose
// message was never shown on the network is nil; the handler decides what that means (show an
// edit as a new message, skip a delete, refuse a reaction).
type Event struct {
	*event.Envelope
	// Msg is the decoded content (kinds with content, else nil).
	Msg *content.Message
	// MessageID is the MIMI message ID: the envelope's, else computed from the content.
	MessageID content.MessageID
	// Replaces is the native message that an edit, delete or unreact replaces.
	Replaces *idmap.Message
	// InReplyTo is the native message that a reply or reaction refers to.
	InReplyTo *idmap.Message
	// Receipts are the entries of a status report whose messages are known natively.
	Receipts []Receipt

	core *Core
	sent []Native
}

// Receipt is one resolved entry of a status report.
type Receipt struct {
	Status content.Status
	Target idmap.Message
}

// Native is a message as the network knows it.
type Native struct {
	Room   event.NativeRoomID
	ID     event.NativeEventID
	Sender event.NativeUserID
}

// Sent tells the core that the handler rendered the event's message natively as n: after the
// handler returns, n is mapped to the message ID (kinds with content) and marked as the
// adapter's own (CoreConfig.Echo), together with the envelope's processed mark.
func (e *Event) Sent(n Native) { e.sent = append(e.sent, n) }

// MapNow maps n to the event's message at once, for adapters that choose the native ID
// themselves and must find it before the send returns (a receipt may arrive first).
func (e *Event) MapNow(ctx context.Context, n Native) error {
	_, err := e.core.ids.Put(ctx, e.mapping(n))
	if err != nil && !errors.Is(err, idmap.ErrConflict) {
		return fmt.Errorf("bridges: record mapping of %s: %w", e.ID, err)
	}
	return nil
}

func (e *Event) mapping(n Native) idmap.Message {
	return idmap.Message{Network: e.core.cfg.Network, NativeRoom: n.Room, NativeID: n.ID, NativeSender: n.Sender,
		Room: e.Room, MessageID: e.MessageID[:], EventID: e.ID, Primary: true}
}

// Handle runs the MIMI → network pipeline for env with adapter a (see Run).
func (c *Core) Handle(ctx context.Context, a Adapter, env *event.Envelope) error {
	if env.Origin.Network == c.cfg.Network && env.Kind != event.KindNotice {
		c.count(env.Kind, "echo")
		return nil // came from this network; already there natively
	}
	done, err := c.cfg.Store.IsProcessed(ctx, c.cfg.Processed, string(env.ID))
	if err != nil {
		return fmt.Errorf("bridges: dedupe %s: %w", env.ID, err)
	}
	if done {
		c.count(env.Kind, "duplicate")
		return nil
	}
	ev, err := c.resolve(ctx, env)
	if err != nil {
		return err
	}
	if err := Dispatch(ctx, a, ev); err != nil {
		if errors.Is(err, ErrUnsupported) {
			c.count(env.Kind, "unsupported")
		} else {
			c.count(env.Kind, "error")
		}
		return err
	}
	err = c.cfg.Store.InTx(ctx, func(tx *store.Tx) error {
		ids := idmap.New(tx).WithClock(c.cfg.Now)
		for _, n := range ev.sent {
			if env.Kind.HasContent() {
				if _, err := ids.Put(ctx, ev.mapping(n)); err != nil && !errors.Is(err, idmap.ErrConflict) {
					return err
				}
			}
			if c.cfg.Echo != "" && n.ID != "" {
				if _, err := tx.MarkProcessed(ctx, c.cfg.Echo, string(n.ID)); err != nil {
					return err
				}
			}
		}
		_, err := tx.MarkProcessed(ctx, c.cfg.Processed, string(env.ID))
		return err
	})
	if err != nil {
		return fmt.Errorf("bridges: record %s: %w", env.ID, err)
	}
	c.count(env.Kind, "sent")
	return nil
}

// resolve decodes env's content and looks up the native messages it refers to.
func (c *Core) resolve(ctx context.Context, env *event.Envelope) (*Event, error) {
	ev := &Event{Envelope: env, core: c}
	if !env.Kind.HasContent() {
		return ev, nil
	}
	var err error
	if ev.Msg, err = content.Decode(env.Content); err != nil {
		c.count(env.Kind, "malformed")
		return nil, bus.Permanent(fmt.Errorf("bridges: content of %s: %w", env.ID, err))
	}
	if len(env.MessageID) == len(ev.MessageID) {
		copy(ev.MessageID[:], env.MessageID)
	} else if ev.MessageID, err = content.ComputeID(c.cfg.IDVersion, env.Content, string(env.Sender), string(env.Room)); err != nil {
		c.count(env.Kind, "malformed")
		return nil, bus.Permanent(fmt.Errorf("bridges: message ID of %s: %w", env.ID, err))
	}
	if ev.Replaces, err = c.native(ctx, env.Room, ev.Msg.Replaces); err != nil {
		return nil, err
	}
	if ev.InReplyTo, err = c.native(ctx, env.Room, ev.Msg.InReplyTo); err != nil {
		return nil, err
	}
	if env.Kind == event.KindReceipt {
		rep, ok, err := ev.Msg.StatusReport()
		if err != nil || !ok {
			c.count(env.Kind, "malformed")
			return nil, bus.Permanent(fmt.Errorf("bridges: receipt %s without a valid status report: %v", env.ID, err))
		}
		for i, s := range rep {
			if i >= MaxReceiptEntries {
				break
			}
			m, err := c.native(ctx, env.Room, &s.MessageID)
			if err != nil {
				return nil, err
			}
			if m != nil {
				ev.Receipts = append(ev.Receipts, Receipt{Status: s.Status, Target: *m})
			}
		}
	}
	return ev, nil
}

// native returns the primary native message of MIMI message id in room, or nil when the network
// never showed it.
func (c *Core) native(ctx context.Context, room event.RoomURI, id *content.MessageID) (*idmap.Message, error) {
	if id == nil {
		return nil, nil
	}
	m, err := c.ids.Primary(ctx, c.cfg.Network, room, id[:])
	if errors.Is(err, idmap.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("bridges: look up message %x: %w", id[:], err)
	}
	return &m, nil
}

// Builder returns a content builder for the envelope id: its salt is Salt(id), so that a native
// event bridged again gets byte-identical content; sender and room go into the extensions, and
// at, unless zero, is the sender timestamp.
func (c *Core) Builder(id event.EventID, sender event.UserURI, room event.RoomURI, at time.Time) *content.Builder {
	salt := c.Salt(id)
	b := &content.Builder{SenderURI: string(sender), RoomURI: string(room), Rand: bytes.NewReader(salt[:])}
	if !at.IsZero() {
		b.Now = func() time.Time { return at }
	}
	return b
}

// Outgoing is a native event on its way to MIMI (Core.Envelope, Core.Publish).
type Outgoing struct {
	// ID is the envelope ID, derived from the native event (event.NewEventID); when empty, from
	// Origin's room and event.
	ID event.EventID
	// Kind, Room, Sender and Timestamp go into the envelope.
	Kind      event.Kind
	Room      event.RoomURI
	Sender    event.UserURI
	Timestamp time.Time
	// Origin is the native event (its Network is the core's).
	Origin event.Origin
	// Msg is the content of kinds with content; the core encodes it.
	Msg *content.Message
	// Membership is the change of a KindMembership envelope.
	Membership *event.Membership
}

// Envelope encodes out's content and returns its validated envelope. An error means out cannot
// be published at all (it wraps event.ErrInvalid or the content encoder's error).
func (c *Core) Envelope(out Outgoing) (*event.Envelope, error) {
	env := &event.Envelope{ID: out.ID, Kind: out.Kind, Room: out.Room, Sender: out.Sender, Timestamp: out.Timestamp, Origin: out.Origin,
		Membership: out.Membership}
	env.Origin.Network = c.cfg.Network
	if env.ID == "" {
		env.ID = event.NewEventID(c.cfg.Network, out.Origin.Room, out.Origin.Event)
	}
	if out.Msg != nil {
		data, mid, err := out.Msg.EncodeWithID(c.cfg.IDVersion)
		if err != nil {
			return nil, fmt.Errorf("bridges: encode %s content: %w", out.Kind, err)
		}
		env.Content, env.MessageID = data, mid[:]
	}
	if err := env.Validate(); err != nil {
		return nil, fmt.Errorf("bridges: envelope %s: %w", out.ID, err)
	}
	return env, nil
}

// Record is what Publish records together after the envelope is on the bus.
type Record struct {
	// Map are native IDs of the message (the origin's room and sender) and whether each is the
	// primary one. MapTo, when set, is the MIMI message they map to (default: the envelope's).
	Map   []MapID
	MapTo *content.MessageID
	// React records the envelope, a reaction with this text, in the reaction table.
	React string
	// Unreact removes the sender's reaction with this text on the envelope's InReplyTo target.
	Unreact string
	// Target is the message reacted to (React, Unreact).
	Target *content.MessageID
	// Done marks the origin's native event in the echo scope (it is handled).
	Done bool
	// MapFirst records Map and the reaction before publishing, so that a reference to the
	// message that comes back at once finds it. Only for adapters that recognise a native event
	// handled before by the Done mark, not by its mapping (a mapping of an envelope whose
	// publishing failed must not make the retry look like a duplicate).
	MapFirst bool
}

// MapID is one native ID of a message.
type MapID struct {
	ID      event.NativeEventID
	Primary bool
}

// Publish puts env on the bus and records rec in one transaction (shared with concurrent
// publishers): after publishing, or, with rec.MapFirst, the mappings and reactions before it and
// the Done mark after it. Only after Publish returned may the adapter acknowledge the native event.
// A ctx that ends while the envelope is in flight does not leave it on the bus unrecorded.
func (c *Core) Publish(ctx context.Context, env *event.Envelope, rec Record) error {
	b := c.NewBatch()
	b.Add(env, rec)
	return b.Flush(ctx)
}

// Batch collects network → MIMI envelopes with their records, to publish and record them
// together: the envelopes in one bus batch (bus.OutBatchPublisher, one sync of the stream for
// all of them), the records in one store transaction (one commit), instead of a sync and a
// commit or two each. An adapter that has several native events in hand at once (queued
// stanzas, an appservice transaction) adds them and acknowledges them upstream only after Flush
// returned nil. A native event that refers to one still in the batch (a reply, an edit, the
// same native ID again) must wait for Flush: the batch's mappings are not readable before it.
// A Batch is not safe for concurrent use.
type Batch struct {
	c    *Core
	envs []*event.Envelope
	recs []Record
	txs  []func(ctx context.Context, tx *store.Tx) error
}

// NewBatch returns an empty batch.
func (c *Core) NewBatch() *Batch { return &Batch{c: c} }

// Add adds env, to be published, and rec, to be recorded as Publish records it.
func (b *Batch) Add(env *event.Envelope, rec Record) {
	b.envs = append(b.envs, env)
	b.recs = append(b.recs, rec)
}

// AddTx adds fn, run in the transaction that records the batch after publishing it (the
// adapter's own writes that go with the envelopes, such as room history), in the order added,
// with the context of that transaction (which outlives Flush's: see Flush). fn follows
// store.InTx's rules.
func (b *Batch) AddTx(fn func(ctx context.Context, tx *store.Tx) error) { b.txs = append(b.txs, fn) }

// Len is the number of envelopes in the batch.
func (b *Batch) Len() int { return len(b.envs) }

// Flush publishes and records everything added since the last Flush and empties the batch: the
// records marked MapFirst in one transaction first, then the envelopes, in their order, then
// every other record, the Done marks and the AddTx functions in one transaction. It returns nil
// only when all of it is durable. After an error any part may be durable (as with Publish): the
// adapter refuses or fails the native events, and their retry is deduplicated by envelope ID.
func (b *Batch) Flush(ctx context.Context) error {
	envs, recs, txs := b.envs, b.recs, b.txs
	b.envs, b.recs, b.txs = nil, nil, nil
	if len(envs) == 0 && len(txs) == 0 {
		return nil
	}
	c := b.c
	if slices.ContainsFunc(recs, func(r Record) bool { return r.MapFirst && c.writes(r, false) }) {
		err := c.cfg.Store.InGroupTx(ctx, func(tx *store.Tx) error {
			for i, r := range recs {
				if r.MapFirst {
					if err := c.recordTx(ctx, tx, envs[i], r, false); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("bridges: record before publishing: %w", err)
		}
	}
	if err := c.publishAll(ctx, envs); err != nil {
		return err
	}
	// The envelopes are on the bus: what records them must be written even if ctx ends now (the
	// adapter stopping with these events in hand). Without its mappings a native event, sent
	// again by its client after a restart, would not be recognised as bridged and would be
	// published again.
	for i, r := range recs {
		if r.MapFirst {
			recs[i] = Record{Done: r.Done}
		}
	}
	if len(txs) == 0 && !slices.ContainsFunc(recs, func(r Record) bool { return c.writes(r, r.Done) }) {
		return nil
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordAfterPublishTimeout)
	defer cancel()
	err := c.cfg.Store.InGroupTx(rctx, func(tx *store.Tx) error {
		for i, r := range recs {
			if err := c.recordTx(rctx, tx, envs[i], r, r.Done); err != nil {
				return err
			}
		}
		for _, fn := range txs {
			if err := fn(rctx, tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("bridges: record: %w", err)
	}
	return nil
}

// publishAll puts envs on the bus in their order: as one batch when the bus can. A ctx that
// ends while they are in flight does not leave them on the bus unrecorded.
func (c *Core) publishAll(ctx context.Context, envs []*event.Envelope) error {
	err := c.publishOnce(ctx, envs)
	if err == nil || ctx.Err() == nil {
		return err
	}
	// Cancelled in flight: the bus may have stored the envelopes without the answer arriving.
	// Publishing them again is harmless (the bus drops a second copy of the same envelope ID)
	// and tells whether they are there, so that their mappings are not left unrecorded.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordAfterPublishTimeout)
	defer cancel()
	if err := c.publishOnce(pctx, envs); err != nil {
		return fmt.Errorf("%w (cancelled)", err)
	}
	return nil
}

// publishOnce puts envs on the bus in their order: as one batch when the bus can.
func (c *Core) publishOnce(ctx context.Context, envs []*event.Envelope) error {
	if bp, ok := c.cfg.Bus.(bus.OutBatchPublisher); ok && len(envs) > 1 {
		if err := bp.PublishOutBatch(ctx, envs); err != nil {
			return fmt.Errorf("bridges: publish %d envelopes: %w", len(envs), err)
		}
		return nil
	}
	for _, env := range envs {
		if err := c.cfg.Bus.PublishOut(ctx, env); err != nil {
			return fmt.Errorf("bridges: publish %s: %w", env.ID, err)
		}
	}
	return nil
}

// recordAfterPublishTimeout bounds the recording of a published envelope, which outlives the
// caller's context.
const recordAfterPublishTimeout = 30 * time.Second

// writes reports whether recording rec (with the echo mark if done) writes anything.
func (c *Core) writes(rec Record, done bool) bool {
	return len(rec.Map) > 0 || rec.React != "" || rec.Unreact != "" || done && c.cfg.Echo != ""
}

// recordTx writes rec's mappings and reactions and, if done, the origin's echo mark in tx.
func (c *Core) recordTx(ctx context.Context, tx *store.Tx, env *event.Envelope, rec Record, done bool) error {
	done = done && c.cfg.Echo != ""
	ids := idmap.New(tx).WithClock(c.cfg.Now)
	mid := env.MessageID
	if rec.MapTo != nil {
		mid = rec.MapTo[:]
	}
	for _, m := range rec.Map {
		if len(mid) == 0 {
			break
		}
		_, err := ids.Put(ctx, idmap.Message{Network: c.cfg.Network, NativeRoom: env.Origin.Room, NativeID: m.ID,
			NativeSender: env.Origin.Sender, Room: env.Room, MessageID: mid, EventID: env.ID, Primary: m.Primary})
		if err != nil && !errors.Is(err, idmap.ErrConflict) {
			return fmt.Errorf("bridges: record %s: %w", env.ID, err)
		}
	}
	if rec.Target != nil && rec.React != "" {
		if _, err := ids.PutReaction(ctx, idmap.Reaction{Room: env.Room, Target: rec.Target[:], Reactor: env.Sender,
			Emoji: rec.React, MessageID: env.MessageID, EventID: env.ID}); err != nil {
			return fmt.Errorf("bridges: record %s: %w", env.ID, err)
		}
	}
	if rec.Target != nil && rec.Unreact != "" {
		if _, err := ids.DeleteReaction(ctx, env.Room, rec.Target[:], env.Sender, rec.Unreact); err != nil {
			return fmt.Errorf("bridges: record %s: %w", env.ID, err)
		}
	}
	if done {
		if _, err := tx.MarkProcessed(ctx, c.cfg.Echo, string(env.Origin.Event)); err != nil {
			return fmt.Errorf("bridges: record %s: %w", env.ID, err)
		}
	}
	return nil
}

// MessageOf returns the MIMI message that native ID id names in native room nroom, whoever sent
// it (a reply, reaction or receipt may refer to anyone's message): the primary mapping, else any.
// ok is false when the ID is not mapped, or is mapped in another MIMI room than room (when room
// is set).
func (c *Core) MessageOf(ctx context.Context, nroom event.NativeRoomID, id event.NativeEventID, room event.RoomURI) (mid content.MessageID, ok bool, err error) {
	ms, err := c.ids.NativeAny(ctx, c.cfg.Network, nroom, id)
	if err != nil {
		return mid, false, fmt.Errorf("bridges: look up %s: %w", id, err)
	}
	if len(ms) == 0 {
		return mid, false, nil
	}
	pick := ms[0]
	for _, m := range ms {
		if m.Primary {
			pick = m
			break
		}
	}
	if (room != "" && pick.Room != room) || len(pick.MessageID) != len(mid) {
		return mid, false, nil
	}
	copy(mid[:], pick.MessageID)
	return mid, true, nil
}
