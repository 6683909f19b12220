package matrix

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	mevent "maunium.net/go/mautrix/event"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/internal/dendritetest"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// asEnv is an appservice-mode gateway against a real Dendrite.
type asEnv struct {
	hs      *dendritetest.Server
	cfg     Config
	dir     string
	st      *store.Store
	bus     *bus.NATS
	out     *outbox
	adapter *Adapter
	sub     bus.Subscription
}

func appserviceConfig(t testing.TB, dir string) Config {
	return Config{
		Mode: ModeAppservice, ServerName: dendritetest.ServerName, GatewayDomain: "localhost",
		Appservice: AppserviceConfig{Listen: dendritetest.FreeAddr(t), RegistrationFile: filepath.Join(dir, "registration.yaml")},
		Encryption: EncryptionConfig{PickleKey: testPickleKey},
		DecryptWait: 3 * time.Second,
	}
}

func startAppserviceEnv(t *testing.T) *asEnv {
	t.Helper()
	dir := t.TempDir()
	cfg := appserviceConfig(t, dir)
	if _, err := WriteRegistration(cfg, cfg.Appservice.RegistrationFile); err != nil {
		t.Fatal(err)
	}
	e := &asEnv{dir: dir, cfg: cfg}
	e.hs = dendritetest.Start(t, cfg.Appservice.RegistrationFile)
	e.cfg.HomeserverURL = e.hs.URL
	e.st = openStore(t, dir)
	e.bus = openBus(t, dir)
	e.out = collectOut(t, e.bus)
	e.startAdapter(t)
	return e
}

func (e *asEnv) startAdapter(t *testing.T) {
	t.Helper()
	a, err := New(Options{Config: e.cfg, Store: e.st, Bus: e.bus, Assets: newAssetsAt(t, e.dir), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("adapter device did not complete its first sync")
	}
	sub, err := bridges.Run(context.Background(), e.bus, "matrix-test", a, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	e.adapter, e.sub = a, sub
	t.Cleanup(func() { e.stopAdapter(t) })
}

func (e *asEnv) stopAdapter(t *testing.T) {
	if e.adapter == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = e.sub.Stop(ctx)
	if err := e.adapter.Stop(ctx); err != nil {
		t.Errorf("stop adapter: %v", err)
	}
	e.adapter = nil
}

func newAssetsAt(t testing.TB, dir string) bridges.AssetStore {
	t.Helper()
	a, err := assetsNew(filepath.Join(dir, "assets"))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// decodeText returns the plain text, markdown and HTML of a MIMI message body.
func decodeText(t testing.TB, data []byte) (msg *content.Message, plain, md, html string) {
	t.Helper()
	msg, err := content.Decode(data)
	if err != nil {
		t.Fatalf("decode content: %v", err)
	}
	for _, ip := range msg.Parts() {
		if sp, ok := ip.Part.Body.(content.SinglePart); ok {
			switch sp.ContentType {
			case content.TypePlain:
				plain = string(sp.Content)
			case content.TypeGFMMIMI:
				md = string(sp.Content)
			case content.TypeHTML:
				html = string(sp.Content)
			}
		}
	}
	return msg, plain, md, html
}

// mimiMessage builds a MIMI → legacy envelope from a partner user.
func mimiMessage(t testing.TB, kind event.Kind, room event.RoomURI, sender event.UserURI, n int, edit func(m *content.Message)) *event.Envelope {
	t.Helper()
	m := &content.Message{}
	m.Salt[0], m.Salt[1] = byte(n), byte(n>>8)
	if err := m.Extensions.SetSenderURI(string(sender)); err != nil {
		t.Fatal(err)
	}
	if err := m.Extensions.SetRoomURI(string(room)); err != nil {
		t.Fatal(err)
	}
	m.Body = content.NestedPart{Disposition: content.DispRender, Body: content.NullPart{}}
	edit(m)
	data, mid, err := m.EncodeWithID(content.DefaultIDVersion)
	if err != nil {
		t.Fatal(err)
	}
	return &event.Envelope{
		ID: event.NewEventID(event.NetworkMIMI, event.NativeRoomID(room), event.NativeEventID(mid.String())), Kind: kind,
		Room: room, Sender: sender, Content: data, MessageID: mid[:], Timestamp: time.Now().UTC().Truncate(time.Millisecond),
		Origin: event.Origin{Network: event.NetworkMIMI},
	}
}

func textBody(ct, s string) content.NestedPart {
	return content.NestedPart{Disposition: content.DispRender, Body: content.SinglePart{ContentType: ct, Content: []byte(s)}}
}

const bobURI = event.UserURI("mimi://amt-b.example/u/bob")

func TestAppserviceEncryptedRoundTrip(t *testing.T) {
	e := startAppserviceEnv(t)
	ctx := t.Context()
	alice := newE2EEClient(t, e.hs, "alice", "alicepassword123")
	ghost := e.adapter.ghosts.UserID(bobURI)
	room := alice.createEncryptedRoom(t, ghost)
	roomURI, err := RoomURIOf("localhost", room)
	if err != nil {
		t.Fatal(err)
	}
	aliceURI := event.UserURI("mimi://localhost/u/alice")

	// The invite of the ghost makes the room a portal and reaches MIMI as a membership event.
	inv := e.out.wait(t, "invite envelope", func(env *event.Envelope) bool {
		return env.Kind == event.KindMembership && env.Membership.Action == event.MembershipInvite
	})
	if inv.Room != roomURI || inv.Sender != aliceURI || inv.Membership.Target != bobURI {
		t.Fatalf("invite envelope = room %s sender %s target %s", inv.Room, inv.Sender, inv.Membership.Target)
	}
	alice.waitJoined(t, room, ghost)
	alice.waitJoined(t, room, e.adapter.botUserID())

	// Text, encrypted by alice's device, decrypted by the gateway's.
	textID := alice.send(t, room, &mevent.MessageEventContent{MsgType: mevent.MsgText, Body: "hello *MIMI*",
		Format: mevent.FormatHTML, FormattedBody: "hello <em>MIMI</em><script>alert(1)</script>"})
	text := e.out.wait(t, "text envelope", func(env *event.Envelope) bool { return env.Origin.Event == event.NativeEventID(textID) })
	if text.Kind != event.KindMessage || text.Sender != aliceURI || text.Room != roomURI {
		t.Fatalf("text envelope kind %s sender %s room %s", text.Kind, text.Sender, text.Room)
	}
	msg, _, md, html := decodeText(t, text.Content)
	if md != "hello _MIMI_" || html != "hello <em>MIMI</em>" {
		t.Fatalf("text: markdown %q html %q", md, html)
	}
	if x, ok := msg.Extensions.ExternalMessageID(); !ok || string(x.ID) != string(textID) {
		t.Fatalf("extension 4 = %v, %v; want the Matrix event ID", x, ok)
	}

	// MIMI → Matrix: bob's message appears from his ghost, encrypted, and alice's client decrypts it.
	in := mimiMessage(t, event.KindMessage, roomURI, bobURI, 1, func(m *content.Message) {
		m.Body = textBody(content.TypeGFMMIMI, "hi **alice**")
		m.InReplyTo = (*content.MessageID)(text.MessageID)
	})
	if err := e.bus.PublishIn(ctx, event.NetworkMatrix, in); err != nil {
		t.Fatal(err)
	}
	got := alice.waitEvent(t, "bob's message", func(ev *mevent.Event) bool {
		return ev.Sender == ghost && ev.Type == mevent.EventMessage
	})
	if !got.Mautrix.WasEncrypted {
		t.Error("bob's message reached alice unencrypted")
	}
	c := got.Content.AsMessage()
	if c.Body != "hi **alice**" || c.FormattedBody != "hi <strong>alice</strong>" {
		t.Errorf("bob's message: body %q formatted %q", c.Body, c.FormattedBody)
	}
	if c.RelatesTo == nil || c.RelatesTo.InReplyTo == nil || c.RelatesTo.InReplyTo.EventID != textID {
		t.Errorf("bob's reply relation = %+v, want in reply to %s", c.RelatesTo, textID)
	}
}
