package bridgetest_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/bridgetest"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// TestMemnetConformance runs the shared adapter tests against the in-memory adapter, on the
// embedded bus and a SQLite store.
func TestMemnetConformance(t *testing.T) {
	bridgetest.Conformance(t, memnetFixture(t))
}

// Out collects the envelopes of mimi.out.
type outbox struct {
	mu   sync.Mutex
	envs []*event.Envelope
}

func (o *outbox) find(native string) *event.Envelope {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, e := range o.envs {
		if string(e.Origin.Event) == native {
			return e
		}
	}
	return nil
}

func memnetFixture(t *testing.T) bridgetest.Fixture {
	ctx := t.Context()
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	b, err := bus.Open(ctx, bus.Config{Mode: bus.ModeEmbedded, Embedded: bus.EmbeddedConfig{StoreDir: filepath.Join(dir, "nats")},
		AckWait: 2 * time.Second, MaxDeliveries: 5, Backoff: []time.Duration{50 * time.Millisecond}, Partitions: 2, ReadyTimeout: 15 * time.Second}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	st, err := store.Open(ctx, store.Config{Path: filepath.Join(dir, "gw.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	m, err := bridgetest.New(ctx, bridgetest.Config{Domain: "mem.example"}, bridges.Deps{Store: st, Bus: b, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	out := &outbox{}
	osub, err := b.ConsumeOut(ctx, "conformance-out", func(_ context.Context, d bus.Delivery) error {
		out.mu.Lock()
		out.envs = append(out.envs, d.Envelope)
		out.mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = osub.Stop(context.Background()) })
	isub, err := bridges.Run(ctx, b, "memnet", m, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = isub.Stop(context.Background()) })
	room := event.NewRoomURI("mem.example", "ward")
	remote := event.UserURI("mimi://partner.example/u/bob")
	return bridgetest.Fixture{
		Room: room, Local: "mimi://mem.example/u/alice", Remote: remote,
		In: func(t testing.TB, env *event.Envelope) {
			if err := b.PublishIn(t.Context(), bridgetest.NetworkMem, env); err != nil {
				t.Fatal(err)
			}
		},
		Out: func(t testing.TB, native string) *event.Envelope {
			var got *event.Envelope
			waitFor(t, "envelope of "+native, func() bool { got = out.find(native); return got != nil })
			return got
		},
		Native: &memUser{m: m, room: string(room), name: "alice", remote: string(remote)},
	}
}

// memUser is alice on the in-memory network.
type memUser struct {
	m                  *bridgetest.Memnet
	room, name, remote string
}

func (u *memUser) write(t testing.TB, kind event.Kind, text, target string) string {
	id, err := u.m.Write(t.Context(), bridgetest.Post{Room: u.room, Sender: u.name, Kind: kind, Text: text, Target: target})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (u *memUser) Send(t testing.TB, text, replyTo string) string {
	return u.write(t, event.KindMessage, text, replyTo)
}
func (u *memUser) Edit(t testing.TB, target, text string) string {
	return u.write(t, event.KindEdit, text, target)
}
func (u *memUser) React(t testing.TB, target, key string) string {
	return u.write(t, event.KindReaction, key, target)
}
func (u *memUser) Delete(t testing.TB, target string) string {
	return u.write(t, event.KindDelete, "", target)
}

func (u *memUser) Expect(t testing.TB, want bridgetest.Seen) string {
	var id string
	waitFor(t, want.String(), func() bool {
		for _, p := range u.m.Posts() {
			if p.Sender == u.remote && p.Room == u.room && p.Kind == want.Kind && p.Text == want.Text && p.Target == want.Target {
				id = p.ID
				return true
			}
		}
		return false
	})
	return id
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
