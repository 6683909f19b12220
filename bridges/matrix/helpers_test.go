package matrix

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/dendritetest"
	"github.com/mimi-gateway/mimi-gateway/bridges/servertest"
	"github.com/mimi-gateway/mimi-gateway/core/assets"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

const testPickleKey = "test-pickle-key-0123456789"

// testLogger logs to the test log at debug level when MIMI_TEST_VERBOSE=1, else warnings only.
func testLogger(t testing.TB) *slog.Logger {
	lvl := slog.LevelWarn
	if os.Getenv("MIMI_TEST_VERBOSE") == "1" {
		lvl = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: lvl}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	defer func() { _ = recover() }() // logging after the test ended
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func openStore(t testing.TB, dir string) *store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), store.Config{Path: filepath.Join(dir, "gateway.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func openBus(t testing.TB, dir string) *bus.NATS {
	t.Helper()
	b, err := bus.Open(t.Context(), bus.Config{Embedded: bus.EmbeddedConfig{StoreDir: filepath.Join(dir, "nats")}, Partitions: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	return b
}

// outbox collects what adapters publish on mimi.out.
type outbox struct {
	mu   sync.Mutex
	envs []*event.Envelope
	seen map[event.EventID]int
}

func collectOut(t testing.TB, b bus.Subscriber) *outbox {
	t.Helper()
	o := &outbox{seen: map[event.EventID]int{}}
	sub, err := b.ConsumeOut(t.Context(), "test-outbox", func(_ context.Context, d bus.Delivery) error {
		o.mu.Lock()
		defer o.mu.Unlock()
		o.envs = append(o.envs, d.Envelope)
		o.seen[d.Envelope.ID]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = sub.Stop(ctx)
	})
	return o
}

// wait returns the first envelope (in arrival order, after index from) matching f.
func (o *outbox) wait(t testing.TB, what string, f func(*event.Envelope) bool) *event.Envelope {
	t.Helper()
	var found *event.Envelope
	waitFor(t, 30*time.Second, what, func() bool {
		o.mu.Lock()
		defer o.mu.Unlock()
		for _, e := range o.envs {
			if f(e) {
				found = e
				return true
			}
		}
		return false
	})
	return found
}

// len is the number of envelopes collected.
func (o *outbox) len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.envs)
}

func (o *outbox) count(id event.EventID) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.seen[id]
}

// waitFor polls cond until it holds or the timeout (scaled for the machine, servertest.Scale)
// passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	timeout = servertest.Scale(timeout)
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// e2eeClient is a real Matrix client with its own E2EE device (mautrix cryptohelper, goolm), as
// a Matrix user of the homeserver would run it.
type e2eeClient struct{ *dendritetest.Client }

func newE2EEClient(t testing.TB, hs *dendritetest.Server, user, password string) *e2eeClient {
	t.Helper()
	hs.CreateUser(t, user, password)
	return &e2eeClient{dendritetest.NewClient(t, hs.URL, user, password)}
}

// waitEvent waits for a timeline event matching f.
func (c *e2eeClient) waitEvent(t testing.TB, what string, f func(*mevent.Event) bool) *mevent.Event {
	t.Helper()
	return c.WaitEvent(t, 30*time.Second, what, f)
}

// createEncryptedRoom creates a private room with Megolm encryption and invites users.
func (c *e2eeClient) createEncryptedRoom(t testing.TB, invite ...id.UserID) id.RoomID {
	t.Helper()
	return c.CreateRoom(t, "", true, false, invite...)
}

// waitJoined waits until the client's state store sees u joined to room.
func (c *e2eeClient) waitJoined(t testing.TB, room id.RoomID, u id.UserID) {
	t.Helper()
	c.WaitJoined(t, 30*time.Second, room, u)
}

func (c *e2eeClient) send(t testing.TB, room id.RoomID, content any) id.EventID {
	t.Helper()
	return c.Send(t, room, mevent.EventMessage, content)
}

func (c *e2eeClient) sendType(t testing.TB, room id.RoomID, typ mevent.Type, content any) id.EventID {
	t.Helper()
	return c.Send(t, room, typ, content)
}

func newAssets(t testing.TB) *assets.Store {
	t.Helper()
	a, err := assets.New(filepath.Join(t.TempDir(), "assets"), "localhost", 0)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
