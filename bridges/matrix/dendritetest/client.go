package dendritetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/cryptohelper"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges/servertest"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

const clientPickleKey = "dendritetest-client-pickle-key"

// Client is a Matrix user's app: a mautrix-go client with its own E2EE device
// (cryptohelper, goolm; Olm account and Megolm sessions in SQLite), logged in with a password and
// syncing in the background. It decrypts what it receives and encrypts what it sends into
// encrypted rooms; every timeline event (and invite) is kept for assertions.
type Client struct {
	*mautrix.Client

	mu      sync.Mutex
	events  []*mevent.Event
	arrived map[*mevent.Event]time.Time
	errs    []string
}

// OpenDB opens a SQLite store in a temporary directory for mautrix's tables (crypto and
// state stores), closed when the test ends.
func OpenDB(t testing.TB) *dbutil.Database {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{Path: filepath.Join(t.TempDir(), "client.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	db, err := dbutil.NewWithDB(st.DB(), "sqlite3")
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// NewClient logs user in on the homeserver at hsURL and starts syncing until the test ends.
// The account must exist (Server.CreateUser).
func NewClient(t testing.TB, hsURL, user, password string) *Client {
	t.Helper()
	ctx := context.Background()
	cli, err := mautrix.NewClient(hsURL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	db := OpenDB(t)
	if dir := os.Getenv("MIMI_MATRIX_CLIENT_LOG_DIR"); dir != "" {
		// Someone looks into a failure: the client's own debug log (mautrix, crypto) goes to
		// <dir>/<user>-<time>.log.
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%d.log", user, time.Now().UnixNano())))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = f.Close() })
		cli.Log = zerolog.New(f).Level(zerolog.DebugLevel).With().Timestamp().Logger()
	}
	c := &Client{Client: cli, arrived: map[*mevent.Event]time.Time{}}
	syncer := mautrix.NewDefaultSyncer()
	cli.Syncer = &appSyncer{DefaultSyncer: syncer}
	helper, err := cryptohelper.NewCryptoHelper(cli, []byte(clientPickleKey), db)
	if err != nil {
		t.Fatal(err)
	}
	helper.LoginAs = &mautrix.ReqLogin{Type: mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: user}, Password: password}
	if err := helper.Init(ctx); err != nil {
		t.Fatalf("matrix client %s: crypto init: %v", user, err)
	}
	cli.Crypto = helper
	helper.DecryptErrorCallback = func(evt *mevent.Event, err error) {
		c.mu.Lock()
		c.errs = append(c.errs, fmt.Sprintf("%s: %v", evt.ID, err))
		c.mu.Unlock()
	}
	record := func(_ context.Context, evt *mevent.Event) {
		c.mu.Lock()
		c.events = append(c.events, evt)
		c.arrived[evt] = time.Now()
		c.mu.Unlock()
	}
	for _, typ := range []mevent.Type{mevent.EventMessage, mevent.EventReaction, mevent.EventRedaction, mevent.StateMember, mevent.EphemeralEventReceipt} {
		syncer.OnEventType(typ, record)
	}
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for sctx.Err() == nil {
			if err := cli.SyncWithContext(sctx); err != nil && sctx.Err() == nil {
				// The homeserver is down or restarting: try again shortly.
				select {
				case <-sctx.Done():
				case <-time.After(200 * time.Millisecond):
				}
			}
		}
	}()
	t.Cleanup(func() { cancel(); cli.StopSync(); <-done })
	return c
}

// Events returns the received events matching f, in order.
func (c *Client) Events(f func(*mevent.Event) bool) []*mevent.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*mevent.Event
	for _, e := range c.events {
		if f(e) {
			out = append(out, e)
		}
	}
	return out
}

// ArrivedAt is when the client received e (zero for an event it did not record).
func (c *Client) ArrivedAt(e *mevent.Event) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.arrived[e]
}

// DecryptErrors returns the decryption failures so far.
func (c *Client) DecryptErrors() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.errs...)
}

// WaitEvent waits for a received event matching f; after timeout (scaled for the machine,
// servertest.Scale) it fails the test with what the client received.
func (c *Client) WaitEvent(t testing.TB, timeout time.Duration, what string, f func(*mevent.Event) bool) *mevent.Event {
	t.Helper()
	timeout = servertest.Scale(timeout)
	e, err := c.Wait(timeout, f)
	if err != nil {
		t.Fatalf("%s: timed out after %s waiting for %s; received:\n%s\ndecryption errors: %v", c.UserID, timeout, what, c.describe(), c.DecryptErrors())
	}
	return e
}

// Wait is WaitEvent returning an error instead of failing.
func (c *Client) Wait(timeout time.Duration, f func(*mevent.Event) bool) (*mevent.Event, error) {
	deadline := time.Now().Add(timeout)
	for {
		if es := c.Events(f); len(es) > 0 {
			return es[0], nil
		}
		if time.Now().After(deadline) {
			return nil, errors.New("timed out")
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (c *Client) describe() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	start := 0
	if len(c.events) > 40 {
		start = len(c.events) - 40
	}
	for _, e := range c.events[start:] {
		fmt.Fprintf(&b, "  %s %s in %s from %s: %s\n", e.ID, e.Type.Type, e.RoomID, e.Sender, describeContent(e))
	}
	return b.String()
}

func describeContent(e *mevent.Event) string {
	switch c := e.Content.Parsed.(type) {
	case *mevent.MessageEventContent:
		return fmt.Sprintf("%s %q", c.MsgType, c.Body)
	case *mevent.MemberEventContent:
		return string(c.Membership)
	case *mevent.ReactionEventContent:
		return c.RelatesTo.Key
	}
	return string(e.Content.VeryRaw)
}

// CreateRoom creates a private room (Megolm-encrypted when encrypted is set) with a name and
// invites users; isDirect marks it as a 1:1 chat.
func (c *Client) CreateRoom(t testing.TB, name string, encrypted, isDirect bool, invite ...id.UserID) id.RoomID {
	t.Helper()
	req := &mautrix.ReqCreateRoom{Preset: "private_chat", Name: name, Invite: invite, IsDirect: isDirect}
	if encrypted {
		req.InitialState = []*mevent.Event{{Type: mevent.StateEncryption,
			Content: mevent.Content{Parsed: &mevent.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}}}}
	}
	resp, err := c.Client.CreateRoom(context.Background(), req)
	if err != nil {
		t.Fatalf("%s: create room: %v", c.UserID, err)
	}
	if encrypted {
		_ = c.StateStore.SetEncryptionEvent(context.Background(), resp.RoomID, &mevent.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1})
	}
	return resp.RoomID
}

// WaitInvite waits for an invitation of the client's user into a room matching f (nil: any)
// and returns the room.
func (c *Client) WaitInvite(t testing.TB, timeout time.Duration, f func(*mevent.Event) bool) id.RoomID {
	t.Helper()
	e := c.WaitEvent(t, timeout, "an invitation", func(e *mevent.Event) bool {
		m, ok := e.Content.Parsed.(*mevent.MemberEventContent)
		return ok && e.Type == mevent.StateMember && e.StateKey != nil && *e.StateKey == c.UserID.String() &&
			m.Membership == mevent.MembershipInvite && (f == nil || f(e))
	})
	return e.RoomID
}

// Join joins the room and loads its state (encryption, members) into the client's state store,
// as an app does before its user can write: a message sent before the client knows the members
// would be encrypted for nobody.
func (c *Client) Join(t testing.TB, room id.RoomID) {
	t.Helper()
	if _, err := c.JoinRoomByID(context.Background(), room); err != nil {
		t.Fatalf("%s: join %s: %v", c.UserID, room, err)
	}
	if _, err := c.State(context.Background(), room); err != nil {
		t.Fatalf("%s: state of %s after joining: %v", c.UserID, room, err)
	}
}

// WaitJoined waits until the client's state store sees u joined to room.
func (c *Client) WaitJoined(t testing.TB, timeout time.Duration, room id.RoomID, u id.UserID) {
	t.Helper()
	servertest.Eventually(t, timeout, fmt.Sprintf("%s joined %s", u, room), func() error {
		if c.StateStore.IsInRoom(context.Background(), room, u) {
			return nil
		}
		_, _ = c.State(context.Background(), room)
		return errors.New("not joined")
	})
}

// Send sends a message event (content: *mevent.MessageEventContent, a reaction, …) and returns
// its ID; it is encrypted when the room is.
func (c *Client) Send(t testing.TB, room id.RoomID, typ mevent.Type, content any) id.EventID {
	t.Helper()
	evID, err := c.TrySend(room, typ, content)
	if err != nil {
		t.Fatalf("%s: send %s into %s: %v", c.UserID, typ.Type, room, err)
	}
	return evID
}

// TrySend is Send returning the error (for sending while the homeserver is down).
func (c *Client) TrySend(room id.RoomID, typ mevent.Type, content any) (id.EventID, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := c.SendMessageEvent(ctx, room, typ, content)
	if err != nil {
		return "", err
	}
	return resp.EventID, nil
}

// SendText sends an m.text message.
func (c *Client) SendText(t testing.TB, room id.RoomID, body string) id.EventID {
	t.Helper()
	return c.Send(t, room, mevent.EventMessage, &mevent.MessageEventContent{MsgType: mevent.MsgText, Body: body})
}

// Body returns the body of a message event ("" for other events).
func Body(e *mevent.Event) string {
	if m, ok := e.Content.Parsed.(*mevent.MessageEventContent); ok {
		return m.Body
	}
	return ""
}

// appSyncer retries a failed sync after 250 ms, doubling up to 2 s, as a chat app that notices
// its homeserver is back (mautrix's default waits 10 s after every failure).
type appSyncer struct {
	*mautrix.DefaultSyncer
	failures int
}

// OnFailedSync implements mautrix.Syncer.
func (s *appSyncer) OnFailedSync(_ *mautrix.RespSync, err error) (time.Duration, error) {
	if errors.Is(err, mautrix.MUnknownToken) {
		return 0, err
	}
	s.failures++
	return min(250*time.Millisecond<<min(s.failures-1, 3), 2*time.Second), nil
}

// ProcessResponse implements mautrix.Syncer; a response resets the backoff.
func (s *appSyncer) ProcessResponse(ctx context.Context, res *mautrix.RespSync, since string) error {
	s.failures = 0
	return s.DefaultSyncer.ProcessResponse(ctx, res, since)
}
