package matrix

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/cryptohelper"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/dendritetest"
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

func (o *outbox) count(id event.EventID) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.seen[id]
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
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
type e2eeClient struct {
	*mautrix.Client
	mu     sync.Mutex
	events []*mevent.Event // decrypted or plain timeline events
}

func newE2EEClient(t testing.TB, hs *dendritetest.Server, user, password string) *e2eeClient {
	t.Helper()
	ctx := t.Context()
	hs.CreateUser(t, user, password)
	cli, err := mautrix.NewClient(hs.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	st := openStore(t, t.TempDir())
	db, err := dbutil.NewWithDB(st.DB(), "sqlite3")
	if err != nil {
		t.Fatal(err)
	}
	c := &e2eeClient{Client: cli}
	syncer := mautrix.NewDefaultSyncer()
	cli.Syncer = syncer
	helper, err := cryptohelper.NewCryptoHelper(cli, []byte(testPickleKey), db)
	if err != nil {
		t.Fatal(err)
	}
	helper.LoginAs = &mautrix.ReqLogin{Type: mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: user}, Password: password}
	if err := helper.Init(ctx); err != nil {
		t.Fatal(err)
	}
	cli.Crypto = helper
	helper.DecryptErrorCallback = func(evt *mevent.Event, err error) { t.Logf("%s: decrypt %s: %v", user, evt.ID, err) }
	record := func(_ context.Context, evt *mevent.Event) {
		c.mu.Lock()
		c.events = append(c.events, evt)
		c.mu.Unlock()
	}
	syncer.OnEventType(mevent.EventMessage, record)
	syncer.OnEventType(mevent.EventReaction, record)
	syncer.OnEventType(mevent.EventRedaction, record)
	syncer.OnEventType(mevent.StateMember, record)
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for sctx.Err() == nil {
			if err := cli.SyncWithContext(sctx); err != nil && sctx.Err() == nil {
				time.Sleep(200 * time.Millisecond)
			}
		}
	}()
	t.Cleanup(func() { cancel(); cli.StopSync(); <-done })
	return c
}

// waitEvent waits for a timeline event matching f.
func (c *e2eeClient) waitEvent(t testing.TB, what string, f func(*mevent.Event) bool) *mevent.Event {
	t.Helper()
	var found *mevent.Event
	waitFor(t, 30*time.Second, what, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, e := range c.events {
			if f(e) {
				found = e
				return true
			}
		}
		return false
	})
	return found
}

// createEncryptedRoom creates a private room with Megolm encryption and invites users.
func (c *e2eeClient) createEncryptedRoom(t testing.TB, invite ...id.UserID) id.RoomID {
	t.Helper()
	resp, err := c.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{
		Preset: "private_chat", Invite: invite,
		InitialState: []*mevent.Event{{Type: mevent.StateEncryption,
			Content: mevent.Content{Parsed: &mevent.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.StateStore.SetEncryptionEvent(t.Context(), resp.RoomID, &mevent.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1})
	return resp.RoomID
}

// waitJoined waits until the client's state store sees u joined to room.
func (c *e2eeClient) waitJoined(t testing.TB, room id.RoomID, u id.UserID) {
	t.Helper()
	waitFor(t, 30*time.Second, fmt.Sprintf("%s joined %s", u, room), func() bool {
		ok := c.StateStore.IsInRoom(t.Context(), room, u)
		if !ok {
			_, _ = c.State(t.Context(), room)
		}
		return ok
	})
}

func (c *e2eeClient) send(t testing.TB, room id.RoomID, content any) id.EventID {
	t.Helper()
	return c.sendType(t, room, mevent.EventMessage, content)
}

func (c *e2eeClient) sendType(t testing.TB, room id.RoomID, typ mevent.Type, content any) id.EventID {
	t.Helper()
	resp, err := c.SendMessageEvent(t.Context(), room, typ, content)
	if err != nil {
		t.Fatalf("send %s: %v", typ.Type, err)
	}
	return resp.EventID
}

func newAssets(t testing.TB) *assets.Store {
	t.Helper()
	a, err := assets.New(filepath.Join(t.TempDir(), "assets"), "localhost", 0)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
