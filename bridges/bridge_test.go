package bridges_test

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/idmap"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// minimal implements only the core Adapter interface.
type minimal struct {
	mu    sync.Mutex
	calls []string
	core  *bridges.Core
}

func (m *minimal) record(s string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, s)
	return nil
}

func (m *minimal) seen() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.calls...)
}

func (m *minimal) Network() event.Network      { return "testnet" }
func (m *minimal) Start(context.Context) error { return nil }
func (m *minimal) Stop(context.Context) error  { return nil }
func (m *minimal) Ready(context.Context) error { return nil }
func (m *minimal) Core() *bridges.Core         { return m.core }
func (m *minimal) HandleMessage(_ context.Context, e *bridges.Event) error {
	return m.record("message:" + string(e.ID))
}

// full implements every capability interface.
type full struct{ minimal }

func (f *full) HandleEdit(_ context.Context, e *bridges.Event) error {
	return f.record("edit:" + string(e.ID))
}
func (f *full) HandleDelete(_ context.Context, e *bridges.Event) error {
	return f.record("delete:" + string(e.ID))
}
func (f *full) HandleReaction(_ context.Context, e *bridges.Event) error {
	return f.record("reaction:" + string(e.ID))
}
func (f *full) HandleReceipt(_ context.Context, e *bridges.Event) error {
	return f.record("receipt:" + string(e.ID))
}
func (f *full) HandleMembership(_ context.Context, e *bridges.Event) error {
	return f.record("membership:" + string(e.ID))
}
func (f *full) HandleRoomMetadata(_ context.Context, e *bridges.Event) error {
	return f.record("metadata:" + string(e.ID))
}
func (f *full) CreatePortal(_ context.Context, e *bridges.Event) error {
	return f.record("portal:" + string(e.ID))
}
func (f *full) HandleNotice(_ context.Context, e *bridges.Event) error {
	return f.record("notice:" + string(e.ID))
}

var (
	_ bridges.Adapter           = (*minimal)(nil)
	_ bridges.EditHandler       = (*full)(nil)
	_ bridges.DeleteHandler     = (*full)(nil)
	_ bridges.ReactionHandler   = (*full)(nil)
	_ bridges.ReceiptHandler    = (*full)(nil)
	_ bridges.MembershipHandler = (*full)(nil)
	_ bridges.MetadataHandler   = (*full)(nil)
	_ bridges.PortalCreator     = (*full)(nil)
	_ bridges.NoticeHandler     = (*full)(nil)
)

func TestDispatch(t *testing.T) {
	kinds := []struct {
		kind event.Kind
		call string
	}{
		{event.KindMessage, "message"},
		{event.KindEdit, "edit"},
		{event.KindDelete, "delete"},
		{event.KindReaction, "reaction"},
		{event.KindReceipt, "receipt"},
		{event.KindMembership, "membership"},
		{event.KindRoomMetadata, "metadata"},
		{event.KindPortalRequest, "portal"},
		{event.KindNotice, "notice"},
	}
	for _, k := range kinds {
		t.Run(k.kind.String(), func(t *testing.T) {
			env := &bridges.Event{Envelope: &event.Envelope{ID: event.EventID("ev-" + k.call), Kind: k.kind}}
			f := &full{}
			if err := bridges.Dispatch(t.Context(), f, env); err != nil {
				t.Fatalf("full adapter: %v", err)
			}
			if got := f.seen(); len(got) != 1 || got[0] != k.call+":"+string(env.ID) {
				t.Fatalf("full adapter calls = %v", got)
			}
			m := &minimal{}
			err := bridges.Dispatch(t.Context(), m, env)
			if k.kind == event.KindMessage {
				if err != nil || len(m.seen()) != 1 {
					t.Fatalf("minimal adapter, message: err=%v calls=%v", err, m.seen())
				}
				return
			}
			if !errors.Is(err, bridges.ErrUnsupported) || errors.Is(err, bus.ErrPermanent) {
				t.Fatalf("minimal adapter, %s: err = %v, want ErrUnsupported", k.kind, err)
			}
			if len(m.seen()) != 0 {
				t.Fatalf("minimal adapter was called: %v", m.seen())
			}
		})
	}
	for _, k := range []event.Kind{event.KindUnknown, event.Kind(200)} {
		err := bridges.Dispatch(t.Context(), &full{}, &bridges.Event{Envelope: &event.Envelope{ID: "x", Kind: k}})
		if !errors.Is(err, bus.ErrPermanent) {
			t.Errorf("kind %s: err = %v, want bus.ErrPermanent", k, err)
		}
	}
}

// TestRun runs the contract against the embedded bus: supported kinds reach the adapter, and an
// unsupported kind is acknowledged (not redelivered, not dead-lettered) without blocking the room.
func TestRun(t *testing.T) {
	ctx := t.Context()
	b, err := bus.Open(ctx, bus.Config{Mode: bus.ModeEmbedded, Embedded: bus.EmbeddedConfig{StoreDir: filepath.Join(t.TempDir(), "nats")},
		AckWait: time.Second, MaxDeliveries: 3, Backoff: []time.Duration{20 * time.Millisecond}, Partitions: 2, ReadyTimeout: 15 * time.Second},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	st, err := store.Open(ctx, store.Config{Path: filepath.Join(t.TempDir(), "gw.db")}, store.WithMigrations(idmap.Schema))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m := &minimal{core: bridges.NewCore(bridges.CoreConfig{Network: "testnet", Store: st, Bus: b, Processed: "testnet.in"})}
	sub, err := bridges.Run(ctx, b, "run-test", m, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop(context.Background())
	room := event.NewRoomURI("hub.example", "r1")
	text, err := (&content.Builder{SenderURI: "mimi://hub.example/u/bob", RoomURI: string(room)}).New(content.PlainText("hi"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := text.Encode()
	if err != nil {
		t.Fatal(err)
	}
	mk := func(id string, k event.Kind) *event.Envelope {
		return &event.Envelope{ID: event.EventID(id), Kind: k, Room: room, Sender: "mimi://hub.example/u/bob", Content: data,
			Origin: event.Origin{Network: event.NetworkMIMI}, Timestamp: time.Now()}
	}
	for _, e := range []*event.Envelope{mk("m1", event.KindMessage), mk("e1", event.KindEdit), mk("m2", event.KindMessage)} {
		if err := b.PublishIn(ctx, "testnet", e); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(m.seen()) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("calls = %v, want both messages", m.seen())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := m.seen(); got[0] != "message:m1" || got[1] != "message:m2" {
		t.Fatalf("calls = %v: the unsupported edit must not block or reorder the room", got)
	}
}

// flaky is an adapter whose server is away until back is closed: handling fails with errAway
// meanwhile.
type flaky struct {
	minimal
	back chan struct{}
}

var errAway = errors.New("server does not answer")

func (f *flaky) HandleMessage(_ context.Context, e *bridges.Event) error {
	select {
	case <-f.back:
		return f.record("message:" + string(e.ID))
	default:
		_ = f.record("failed:" + string(e.ID))
		return errAway
	}
}

func (f *flaky) ServerUnreachable(err error) bool { return errors.Is(err, errAway) }

func (f *flaky) WaitServer(ctx context.Context) error {
	select {
	case <-f.back:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

var _ bridges.ServerWaiter = (*flaky)(nil)

// TestRunWaitsForServer: an envelope whose handling failed because the adapter's server was away
// is handled again as soon as the server is back, within the same delivery: the bus's redelivery
// delay (an hour here) is not the recovery clock.
func TestRunWaitsForServer(t *testing.T) {
	ctx := t.Context()
	b, err := bus.Open(ctx, bus.Config{Mode: bus.ModeEmbedded, Embedded: bus.EmbeddedConfig{StoreDir: filepath.Join(t.TempDir(), "nats")},
		AckWait: time.Second, MaxDeliveries: 3, Backoff: []time.Duration{time.Hour}, Partitions: 1, ReadyTimeout: 15 * time.Second},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	st, err := store.Open(ctx, store.Config{Path: filepath.Join(t.TempDir(), "gw.db")}, store.WithMigrations(idmap.Schema))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	f := &flaky{minimal: minimal{core: bridges.NewCore(bridges.CoreConfig{Network: "testnet", Store: st, Bus: b, Processed: "testnet.in"})},
		back: make(chan struct{})}
	sub, err := bridges.Run(ctx, b, "wait-test", f, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop(context.Background())
	room := event.NewRoomURI("hub.example", "r1")
	text, err := (&content.Builder{SenderURI: "mimi://hub.example/u/bob", RoomURI: string(room)}).New(content.PlainText("hi"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := text.Encode()
	if err != nil {
		t.Fatal(err)
	}
	env := &event.Envelope{ID: "m1", Kind: event.KindMessage, Room: room, Sender: "mimi://hub.example/u/bob", Content: data,
		Origin: event.Origin{Network: event.NetworkMIMI}, Timestamp: time.Now()}
	if err := b.PublishIn(ctx, "testnet", env); err != nil {
		t.Fatal(err)
	}
	waitCalls := func(want ...string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for len(f.seen()) < len(want) {
			if time.Now().After(deadline) {
				t.Fatalf("calls = %v, want %v", f.seen(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if got := f.seen(); len(got) != len(want) || got[len(got)-1] != want[len(want)-1] {
			t.Fatalf("calls = %v, want %v", got, want)
		}
	}
	waitCalls("failed:m1")
	close(f.back)
	waitCalls("failed:m1", "message:m1")
}
