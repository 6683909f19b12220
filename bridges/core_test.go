package bridges_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/idmap"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// mappedAtPublish is the embedded bus, noting whether the envelope's native ID was mapped when
// it was published.
type mappedAtPublish struct {
	bus.Publisher
	ids    *idmap.Map
	mapped bool
	// after, when set, runs once the envelope is on the bus.
	after func()
}

func (p *mappedAtPublish) PublishOut(ctx context.Context, env *event.Envelope) error {
	_, err := p.ids.Native(ctx, env.Origin.Network, env.Origin.Room, env.Origin.Event, env.Origin.Sender)
	p.mapped = err == nil
	if err := p.Publisher.PublishOut(ctx, env); err != nil {
		return err
	}
	if p.after != nil {
		p.after()
	}
	return nil
}

// TestPublishRecords: Publish maps the native ID and marks the native event done; with MapFirst
// the mapping exists before the envelope is on the bus, without it only afterwards. A context
// that ends once the envelope is on the bus (the adapter stopping) does not keep the mapping
// from being written: else the native event, resent after a restart, would be published again.
func TestPublishRecords(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	b, err := bus.Open(ctx, bus.Config{Mode: bus.ModeEmbedded, Embedded: bus.EmbeddedConfig{StoreDir: filepath.Join(dir, "nats")},
		AckWait: time.Second, MaxDeliveries: 3, Backoff: []time.Duration{20 * time.Millisecond}, Partitions: 2, ReadyTimeout: 15 * time.Second},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	st, err := store.Open(ctx, store.Config{Path: filepath.Join(dir, "gw.db")}, store.WithMigrations(idmap.Schema))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pub := &mappedAtPublish{Publisher: b, ids: idmap.New(st)}
	core := bridges.NewCore(bridges.CoreConfig{Network: "testnet", Store: st, Bus: pub, Processed: "testnet.in", Echo: "testnet.event"})
	core.SetSaltKey([]byte("key"))
	room := event.NewRoomURI("gw.example", "r")
	for _, c := range []struct {
		native           event.NativeEventID
		mapFirst, cancel bool
	}{{"ev-after", false, false}, {"ev-first", true, false}, {"ev-stopped", false, true}} {
		native, mapFirst := c.native, c.mapFirst
		pctx, cancel := context.WithCancel(ctx)
		pub.after = nil
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
	}
}
