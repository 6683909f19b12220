package bridges_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/idmap"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// mappedAtPublish is the embedded bus, noting whether the envelope's native ID was mapped when
// it was published.
type mappedAtPublish struct {
	bus.Publisher
	ids    *idmap.Map
	mapped bool
	// after, when set, runs once the envelope is on the bus.
	after func()
	// lostAck, when set, makes the next publish report ctx's error although the envelope is on
	// the bus (the caller cancelled while the bus's answer was under way).
	lostAck bool
	// published counts the publishes that reached the bus.
	published int
}

func (p *mappedAtPublish) PublishOut(ctx context.Context, env *event.Envelope) error {
	_, err := p.ids.Native(ctx, env.Origin.Network, env.Origin.Room, env.Origin.Event, env.Origin.Sender)
	p.mapped = err == nil
	if err := p.Publisher.PublishOut(ctx, env); err != nil {
		return err
	}
	p.published++
	if p.after != nil {
		p.after()
	}
	if p.lostAck {
		p.lostAck = false
		return ctx.Err()
	}
	return nil
}

// TestPublishRecords: Publish maps the native ID and marks the native event done; with MapFirst
// the mapping exists before the envelope is on the bus, without it only afterwards. A context
// that ends once the envelope is on the bus (the adapter stopping) does not keep the mapping
// from being written: else the native event, resent after a restart, would be published again.
// Neither does one that ends while the bus's answer is under way (the envelope stored, the
// publish reporting the cancellation): Publish learns that it is there and records it.
func TestPublishRecords(t *testing.T) {
	ctx := t.Context()
	b, st := openBusStore(t)
	if err := b.DeclareOut(ctx, "core-test"); err != nil { // the stream keeps what a consumer has yet to read
		t.Fatal(err)
	}
	pub := &mappedAtPublish{Publisher: b, ids: idmap.New(st)}
	core := bridges.NewCore(bridges.CoreConfig{Network: "testnet", Store: st, Bus: pub, Processed: "testnet.in", Echo: "testnet.event"})
	core.SetSaltKey([]byte("key"))
	room := event.NewRoomURI("gw.example", "r")
	for i, c := range []struct {
		native           event.NativeEventID
		mapFirst, cancel bool
		lostAck          bool
	}{{"ev-after", false, false, false}, {"ev-first", true, false, false}, {"ev-stopped", false, true, false},
		{"ev-in-flight", false, true, true}, {"ev-in-flight-first", true, true, true}} {
		native, mapFirst := c.native, c.mapFirst
		pctx, cancel := context.WithCancel(ctx)
		pub.after, pub.lostAck, pub.published = nil, c.lostAck, 0
		if c.cancel {
			pub.after = cancel
		}
		envID := event.NewEventID("testnet", "!r", native)
		msg, err := (&content.Builder{SenderURI: "mimi://gw.example/u/alice", RoomURI: string(room)}).New(content.PlainText("hi"))
		if err != nil {
			t.Fatal(err)
		}
		msg.Salt = core.Salt(envID)
		env, err := core.Envelope(bridges.Outgoing{ID: envID, Kind: event.KindMessage, Room: room, Sender: "mimi://gw.example/u/alice",
			Timestamp: time.Now(), Msg: msg, Origin: event.Origin{Room: "!r", Event: native, Sender: "@alice:gw.example"}})
		if err != nil {
			t.Fatal(err)
		}
		rec := bridges.Record{Map: []bridges.MapID{{ID: native, Primary: true}}, Done: true, MapFirst: mapFirst}
		err = core.Publish(pctx, env, rec)
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", native, err)
		}
		if pub.mapped != mapFirst {
			t.Errorf("%s: mapped when published = %v", native, pub.mapped)
		}
		mid, ok, err := core.MessageOf(ctx, "!r", native, room)
		if err != nil || !ok || string(mid[:]) != string(env.MessageID) {
			t.Errorf("%s: MessageOf = %x, %v, %v; want %x", native, mid, ok, err, env.MessageID)
		}
		if done, err := st.IsProcessed(ctx, "testnet.event", string(native)); err != nil || !done {
			t.Errorf("%s: native event not marked done (%v)", native, err)
		}
		if n := outMessages(t, b); n != int(i)+1 {
			t.Errorf("%s: %d envelopes on the bus after %d publishes (%d reached it), want one per envelope", native, n, i+1, pub.published)
		}
	}
}

// outMessages counts the envelopes in b's stream of legacy → MIMI envelopes.
func outMessages(t *testing.T, b *bus.NATS) int {
	t.Helper()
	nc, err := nats.Connect("", nats.InProcessServer(b.Server()))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(t.Context(), bus.StreamOut)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return int(info.State.Msgs)
}

// openBusStore opens the embedded bus and a SQLite store with idmap's tables in a temp dir,
// closed when t ends.
func openBusStore(t *testing.T) (*bus.NATS, *store.Store) {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	b, err := bus.Open(ctx, bus.Config{Mode: bus.ModeEmbedded, Embedded: bus.EmbeddedConfig{StoreDir: filepath.Join(dir, "nats")},
		AckWait: time.Second, MaxDeliveries: 3, Backoff: []time.Duration{20 * time.Millisecond}, Partitions: 2, ReadyTimeout: 15 * time.Second},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	st, err := store.Open(ctx, store.Config{Path: filepath.Join(dir, "gw.db")}, store.WithMigrations(idmap.Schema))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return b, st
}

// TestBatchFlush: a batch of envelopes of two rooms with their records and an extra write is
// published and recorded by one Flush in one store commit. A store failure in the middle of the
// recording (the extra write fails after half the mappings are written) leaves no mapping and no
// mark; the envelopes are on the bus, and flushing the same batch again records everything while
// the bus delivers every envelope exactly once.
func TestBatchFlush(t *testing.T) {
	ctx := t.Context()
	b, st := openBusStore(t)
	core := bridges.NewCore(bridges.CoreConfig{Network: "testnet", Store: st, Bus: b, Processed: "testnet.in", Echo: "testnet.event"})
	core.SetSaltKey([]byte("key"))
	got := map[event.EventID]int{}
	var mu sync.Mutex
	sub, err := b.ConsumeOut(ctx, "test", func(_ context.Context, d bus.Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		got[d.Envelope.ID]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop(context.Background())
	rooms := []event.RoomURI{event.NewRoomURI("gw.example", "r1"), event.NewRoomURI("gw.example", "r2")}
	type item struct {
		env *event.Envelope
		rec bridges.Record
	}
	var items []item
	for i := range 10 {
		room := rooms[i%2]
		native := event.NativeEventID(fmt.Sprint("ev-", i))
		envID := event.NewEventID("testnet", event.NativeRoomID(room), native)
		msg, err := (&content.Builder{SenderURI: "mimi://gw.example/u/alice", RoomURI: string(room)}).New(content.PlainText(fmt.Sprint("hi ", i)))
		if err != nil {
			t.Fatal(err)
		}
		msg.Salt = core.Salt(envID)
		env, err := core.Envelope(bridges.Outgoing{ID: envID, Kind: event.KindMessage, Room: room, Sender: "mimi://gw.example/u/alice",
			Timestamp: time.Now(), Msg: msg, Origin: event.Origin{Room: event.NativeRoomID(room), Event: native, Sender: "@alice:gw.example"}})
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, item{env, bridges.Record{Map: []bridges.MapID{{ID: native, Primary: true}}, Done: true}})
	}
	fill := func(fail bool) *bridges.Batch {
		bt := core.NewBatch()
		for _, it := range items {
			bt.Add(it.env, it.rec)
		}
		bt.AddTx(func(ctx context.Context, tx *store.Tx) error {
			if fail {
				return errors.New("simulated store failure")
			}
			_, err := tx.MarkProcessed(ctx, "testnet.extra", "batch")
			return err
		})
		return bt
	}
	recorded := func() (n int) {
		for _, it := range items {
			if _, ok, err := core.MessageOf(ctx, it.env.Origin.Room, it.env.Origin.Event, it.env.Room); err == nil && ok {
				n++
			}
			if done, err := st.IsProcessed(ctx, "testnet.event", string(it.env.Origin.Event)); err == nil && done {
				n++
			}
		}
		return n
	}
	if err := fill(true).Flush(ctx); err == nil {
		t.Fatal("Flush with a failing write returned nil")
	}
	if n := recorded(); n != 0 {
		t.Fatalf("after the failed recording %d mappings and marks exist, want 0", n)
	}
	commits0 := storetest.Commits(t, st)
	if err := fill(false).Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if c := storetest.Commits(t, st) - commits0; c != 1 {
		t.Errorf("Flush of 10 envelopes committed %v times, want 1", c)
	}
	if n := recorded(); n != 2*len(items) {
		t.Fatalf("after the second Flush %d mappings and marks, want %d", n, 2*len(items))
	}
	if done, err := st.IsProcessed(ctx, "testnet.extra", "batch"); err != nil || !done {
		t.Fatalf("the extra write is missing (%v)", err)
	}
	// A sentinel per room after the batch: once both arrived, anything stored twice before them
	// was delivered too (a room's envelopes arrive in stream order).
	var sentinels []event.EventID
	for i, room := range rooms {
		env := &event.Envelope{ID: event.NewEventID("testnet", event.NativeRoomID(room), event.NativeEventID(fmt.Sprint("sentinel-", i))),
			Kind: event.KindMembership, Room: room, Sender: "mimi://gw.example/u/alice", Timestamp: time.Now(),
			Origin:     event.Origin{Network: "testnet", Room: event.NativeRoomID(room), Event: "sentinel"},
			Membership: &event.Membership{Action: event.MembershipJoin, Target: "mimi://gw.example/u/alice"}}
		if err := b.PublishOut(ctx, env); err != nil {
			t.Fatal(err)
		}
		sentinels = append(sentinels, env.ID)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		n := got[sentinels[0]] + got[sentinels[1]]
		mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the sentinels did not arrive")
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, it := range items {
		if got[it.env.ID] != 1 {
			t.Errorf("%s delivered %d times, want 1", it.env.Origin.Event, got[it.env.ID])
		}
	}
}
