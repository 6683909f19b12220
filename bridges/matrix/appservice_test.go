package matrix

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix/crypto/attachment"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/dendritetest"
	"github.com/mimi-gateway/mimi-gateway/bridges/servertest"
	"github.com/mimi-gateway/mimi-gateway/core/assets"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/content/gfm"
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
	pub     bus.Publisher // the adapter's bus (default: bus)
}

func appserviceConfig(t testing.TB, dir string) Config {
	return Config{
		Mode: ModeAppservice, ServerName: dendritetest.ServerName, GatewayDomain: "localhost",
		Appservice:  AppserviceConfig{Listen: dendritetest.FreeAddr(t), RegistrationFile: filepath.Join(dir, "registration.yaml")},
		Encryption:  EncryptionConfig{PickleKey: testPickleKey},
		DecryptWait: 3 * time.Second,
	}
}

func startAppserviceEnv(t testing.TB, opts ...func(*Config)) *asEnv {
	t.Helper()
	dir := t.TempDir()
	cfg := appserviceConfig(t, dir)
	for _, o := range opts {
		o(&cfg)
	}
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

func (e *asEnv) startAdapter(t testing.TB) {
	t.Helper()
	var pub bus.Publisher = e.bus
	if e.pub != nil {
		pub = e.pub
	}
	a, err := New(t.Context(), e.cfg, bridges.Deps{Store: e.st, Bus: pub, Assets: newAssetsAt(t, e.dir), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.FirstSync():
	case <-time.After(servertest.Scale(30 * time.Second)):
		t.Fatal("adapter device did not complete its first sync")
	}
	sub, err := bridges.Run(context.Background(), e.bus, "matrix-test", a, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	e.adapter, e.sub = a, sub
	t.Cleanup(func() { e.stopAdapter(t) })
}

func (e *asEnv) stopAdapter(t testing.TB) {
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
	textID := alice.send(t, room, &mevent.MessageEventContent{MsgType: mevent.MsgText, Body: "hello *MIMI* bob",
		Format: mevent.FormatHTML, FormattedBody: "hello <em>MIMI</em><script>alert(1)</script> <a href=\"" + ghost.URI().MatrixToURL() + "\">bob</a>",
		Mentions: &mevent.Mentions{UserIDs: []id.UserID{ghost}}})
	text := e.out.wait(t, "text envelope", func(env *event.Envelope) bool { return env.Origin.Event == event.NativeEventID(textID) })
	if text.Kind != event.KindMessage || text.Sender != aliceURI || text.Room != roomURI {
		t.Fatalf("text envelope kind %s sender %s room %s", text.Kind, text.Sender, text.Room)
	}
	msg, _, md, html := decodeText(t, text.Content)
	if md != "hello *MIMI* [bob]("+string(bobURI)+")" || !strings.HasPrefix(html, "hello <em>MIMI</em> <a href=") {
		t.Fatalf("text: markdown %q html %q", md, html)
	}
	if x, ok := msg.Extensions.ExternalMessageID(); !ok || string(x.ID) != string(textID) {
		t.Fatalf("extension 4 = %v, %v; want the Matrix event ID", x, ok)
	}

	// MIMI → Matrix: bob's message appears from his ghost, encrypted, and alice's client decrypts it.
	in := mimiMessage(t, event.KindMessage, roomURI, bobURI, 1, func(m *content.Message) {
		m.Body = textBody(content.TypeGFMMIMI, "hi **alice** "+gfm.Mention("alice", string(aliceURI)))
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
	if c.Body != "hi alice @alice" || !strings.HasPrefix(c.FormattedBody, "hi <strong>alice</strong> <a href=\"https://matrix.to/#/@alice:localhost\">") {
		t.Errorf("bob's message: body %q formatted %q", c.Body, c.FormattedBody)
	}
	if c.Mentions == nil || len(c.Mentions.UserIDs) != 1 || c.Mentions.UserIDs[0] != "@alice:localhost" {
		t.Errorf("bob's message mentions = %+v", c.Mentions)
	}
	if c.RelatesTo == nil || c.RelatesTo.InReplyTo == nil || c.RelatesTo.InReplyTo.EventID != textID {
		t.Errorf("bob's reply relation = %+v, want in reply to %s", c.RelatesTo, textID)
	}

	// Matrix → MIMI: reply, edit, reaction, unreact, redaction, image.
	replyID := alice.send(t, room, &mevent.MessageEventContent{MsgType: mevent.MsgText, Body: "> <@x:localhost> hi\n\nthanks",
		RelatesTo: &mevent.RelatesTo{InReplyTo: &mevent.InReplyTo{EventID: got.ID}}})
	reply := e.out.wait(t, "reply envelope", func(env *event.Envelope) bool { return env.Origin.Event == event.NativeEventID(replyID) })
	rmsg, plain, _, _ := decodeText(t, reply.Content)
	if plain != "thanks" || rmsg.InReplyTo == nil || *rmsg.InReplyTo != content.MessageID(in.MessageID) {
		t.Errorf("reply: text %q in reply to %v, want %x", plain, rmsg.InReplyTo, in.MessageID)
	}

	editContent := &mevent.MessageEventContent{MsgType: mevent.MsgText, Body: "hello again"}
	editContent.SetEdit(textID)
	editID := alice.send(t, room, editContent)
	edit := e.out.wait(t, "edit envelope", func(env *event.Envelope) bool { return env.Origin.Event == event.NativeEventID(editID) })
	emsg, plain, _, _ := decodeText(t, edit.Content)
	if edit.Kind != event.KindEdit || plain != "hello again" || emsg.Replaces == nil || *emsg.Replaces != content.MessageID(text.MessageID) {
		t.Errorf("edit: kind %s text %q replaces %v", edit.Kind, plain, emsg.Replaces)
	}

	reactID := alice.sendType(t, room, mevent.EventReaction, &mevent.ReactionEventContent{RelatesTo: mevent.RelatesTo{
		Type: mevent.RelAnnotation, EventID: got.ID, Key: "👍"}})
	react := e.out.wait(t, "reaction envelope", func(env *event.Envelope) bool { return env.Origin.Event == event.NativeEventID(reactID) })
	xmsg, plain, _, _ := decodeText(t, react.Content)
	if react.Kind != event.KindReaction || plain != "👍" || xmsg.Body.Disposition != content.DispReaction ||
		xmsg.InReplyTo == nil || *xmsg.InReplyTo != content.MessageID(in.MessageID) {
		t.Errorf("reaction: kind %s key %q disposition %s in reply to %v", react.Kind, plain, xmsg.Body.Disposition, xmsg.InReplyTo)
	}
	unreactResp, err := alice.RedactEvent(ctx, room, reactID)
	if err != nil {
		t.Fatal(err)
	}
	unreact := e.out.wait(t, "unreact envelope", func(env *event.Envelope) bool { return env.Origin.Event == event.NativeEventID(unreactResp.EventID) })
	umsg, _ := content.Decode(unreact.Content)
	if unreact.Kind != event.KindReaction || umsg.Replaces == nil || *umsg.Replaces != content.MessageID(react.MessageID) {
		t.Errorf("unreact: kind %s replaces %v, want %x", unreact.Kind, umsg.Replaces, react.MessageID)
	}
	if _, null := umsg.Body.Body.(content.NullPart); !null || umsg.Body.Disposition != content.DispReaction {
		t.Errorf("unreact body = %#v", umsg.Body)
	}
	delResp, err := alice.RedactEvent(ctx, room, replyID)
	if err != nil {
		t.Fatal(err)
	}
	del := e.out.wait(t, "delete envelope", func(env *event.Envelope) bool { return env.Origin.Event == event.NativeEventID(delResp.EventID) })
	dmsg, _ := content.Decode(del.Content)
	if del.Kind != event.KindDelete || dmsg.Replaces == nil || *dmsg.Replaces != content.MessageID(reply.MessageID) {
		t.Errorf("delete: kind %s replaces %v", del.Kind, dmsg.Replaces)
	}

	// An image, encrypted as Matrix clients do in encrypted rooms.
	png := []byte("\x89PNG\r\n\x1a\n fake image bytes for the test")
	file := attachment.NewEncryptedFile()
	cipherPNG := append([]byte(nil), png...)
	file.EncryptInPlace(cipherPNG)
	up, err := alice.UploadBytes(ctx, cipherPNG, "application/octet-stream")
	if err != nil {
		t.Fatal(err)
	}
	imgID := alice.send(t, room, &mevent.MessageEventContent{MsgType: mevent.MsgImage, Body: "scan.png",
		Info: &mevent.FileInfo{MimeType: "image/png", Size: len(png)},
		File: &mevent.EncryptedFileInfo{EncryptedFile: *file, URL: up.ContentURI.CUString()}})
	img := e.out.wait(t, "image envelope", func(env *event.Envelope) bool { return env.Origin.Event == event.NativeEventID(imgID) })
	imsg, err := content.Decode(img.Content)
	if err != nil {
		t.Fatal(err)
	}
	xp, ok := imsg.Body.Body.(content.ExternalPart)
	if !ok || xp.ContentType != "image/png" || xp.Filename != "scan.png" || xp.EncAlg != content.AEADAES128GCM {
		t.Fatalf("image body = %#v", imsg.Body.Body)
	}
	rc, err := e.adapter.assets.Open(ctx, &assets.Asset{URL: xp.URL, Key: xp.Key, Nonce: xp.Nonce, HashAlg: xp.HashAlg, Hash: xp.ContentHash})
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(stored, png) {
		t.Errorf("asset store holds %q, want the image", stored)
	}

	// MIMI → Matrix: reaction, edit, delete and an image from bob.
	bobReact := mimiMessage(t, event.KindReaction, roomURI, bobURI, 2, func(m *content.Message) {
		m.InReplyTo = (*content.MessageID)(text.MessageID)
		m.Body = content.NestedPart{Disposition: content.DispReaction, Body: content.SinglePart{ContentType: content.TypePlain, Content: []byte("❤")}}
	})
	bobEdit := mimiMessage(t, event.KindEdit, roomURI, bobURI, 3, func(m *content.Message) {
		m.Replaces = (*content.MessageID)(in.MessageID)
		m.Body = textBody(content.TypePlain, "hi alice (edited)")
	})
	asset, err := e.adapter.assets.Put(ctx, bytes.NewReader(png), assets.Meta{ContentType: "image/png", Filename: "x.png", Size: int64(len(png))})
	if err != nil {
		t.Fatal(err)
	}
	bobImage := mimiMessage(t, event.KindMessage, roomURI, bobURI, 4, func(m *content.Message) {
		m.Body = content.NestedPart{Disposition: content.DispRender, Body: content.ExternalPart{ContentType: "image/png", URL: asset.URL,
			Size: asset.Size + 16, EncAlg: content.AEADAES128GCM, Key: asset.Key, Nonce: asset.Nonce, HashAlg: asset.HashAlg,
			ContentHash: asset.Hash, Filename: "x.png"}}
	})
	bobDelete := mimiMessage(t, event.KindDelete, roomURI, bobURI, 5, func(m *content.Message) {
		m.Replaces = (*content.MessageID)(in.MessageID)
	})
	for _, env := range []*event.Envelope{bobReact, bobEdit, bobImage, bobDelete} {
		if err := e.bus.PublishIn(ctx, event.NetworkMatrix, env); err != nil {
			t.Fatal(err)
		}
	}
	r := alice.waitEvent(t, "bob's reaction", func(ev *mevent.Event) bool { return ev.Sender == ghost && ev.Type == mevent.EventReaction })
	if rc := r.Content.AsReaction(); rc.RelatesTo.Key != "❤" || rc.RelatesTo.EventID != textID {
		t.Errorf("bob's reaction = %+v", rc.RelatesTo)
	}
	ed := alice.waitEvent(t, "bob's edit", func(ev *mevent.Event) bool {
		c := ev.Content.AsMessage()
		return ev.Sender == ghost && c.RelatesTo != nil && c.RelatesTo.Type == mevent.RelReplace
	})
	if c := ed.Content.AsMessage(); c.RelatesTo.EventID != got.ID || c.NewContent == nil || c.NewContent.Body != "hi alice (edited)" || !ed.Mautrix.WasEncrypted {
		t.Errorf("bob's edit = %+v (encrypted %v)", c, ed.Mautrix.WasEncrypted)
	}
	im := alice.waitEvent(t, "bob's image", func(ev *mevent.Event) bool {
		return ev.Sender == ghost && ev.Type == mevent.EventMessage && ev.Content.AsMessage().MsgType == mevent.MsgImage
	})
	ic := im.Content.AsMessage()
	if ic.File == nil {
		t.Fatalf("bob's image is not an encrypted file: %+v", ic)
	}
	u, _ := ic.File.URL.Parse()
	dl, err := alice.DownloadBytes(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if err := ic.File.DecryptInPlace(dl); err != nil || !bytes.Equal(dl, png) {
		t.Errorf("bob's image decrypts to %q (%v)", dl, err)
	}
	alice.waitEvent(t, "bob's delete", func(ev *mevent.Event) bool {
		return ev.Sender == ghost && ev.Type == mevent.EventRedaction && ev.Redacts == got.ID
	})

	// A MIMI room hosted by a partner: the gateway creates an encrypted portal, invites alice on
	// the MIMI side's request, and bob's messages reach her encrypted.
	partnerRoom := event.RoomURI("mimi://amt-b.example/r/clubhouse")
	invite := &event.Envelope{ID: "mimi:invite-alice", Kind: event.KindMembership, Room: partnerRoom, Sender: bobURI,
		Timestamp: time.Now().UTC(), Origin: event.Origin{Network: event.NetworkMIMI},
		Membership: &event.Membership{Action: event.MembershipInvite, Target: aliceURI}}
	if err := e.bus.PublishIn(ctx, event.NetworkMatrix, invite); err != nil {
		t.Fatal(err)
	}
	inv2 := alice.waitEvent(t, "alice's invite to the new portal", func(ev *mevent.Event) bool {
		return ev.Type == mevent.StateMember && ev.GetStateKey() == "@alice:localhost" && ev.RoomID != room &&
			ev.Content.AsMember().Membership == mevent.MembershipInvite
	})
	portal, ok, err := e.adapter.portals.ByMIMI(ctx, partnerRoom)
	if err != nil || !ok || portal != inv2.RoomID {
		t.Fatalf("portal of %s = %s, %v, %v; invite was to %s", partnerRoom, portal, ok, err, inv2.RoomID)
	}
	if _, err := alice.JoinRoomByID(ctx, portal); err != nil {
		t.Fatal(err)
	}
	if enc, _ := e.adapter.stateStore.IsEncrypted(ctx, portal); !enc {
		t.Error("new portal is not encrypted")
	}
	hello := mimiMessage(t, event.KindMessage, partnerRoom, bobURI, 6, func(m *content.Message) {
		m.Body = textBody(content.TypePlain, "welcome to the clubhouse")
	})
	if err := e.bus.PublishIn(ctx, event.NetworkMatrix, hello); err != nil {
		t.Fatal(err)
	}
	w := alice.waitEvent(t, "bob's message in the new portal", func(ev *mevent.Event) bool {
		return ev.RoomID == portal && ev.Sender == ghost && ev.Type == mevent.EventMessage
	})
	if !w.Mautrix.WasEncrypted || w.Content.AsMessage().Body != "welcome to the clubhouse" {
		t.Errorf("message in new portal: encrypted %v body %q", w.Mautrix.WasEncrypted, w.Content.AsMessage().Body)
	}
}
