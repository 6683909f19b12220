package matrix

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"maunium.net/go/mautrix/crypto/attachment"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/dendritetest"
	"github.com/mimi-gateway/mimi-gateway/bridges/servertest"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// startClientEnv starts Dendrite and a client-mode adapter with the functional account
// @mimigw:localhost (edit adjusts its configuration), consuming its mimi.in subjects.
func startClientEnv(t *testing.T, edit func(*Config)) (*dendritetest.Server, *Adapter, *bus.NATS, *outbox) {
	t.Helper()
	dir := t.TempDir()
	hs := dendritetest.Start(t)
	hs.CreateUser(t, "mimigw", "functionalpassword1")
	cfg := Config{
		Mode: ModeClient, HomeserverURL: hs.URL, ServerName: dendritetest.ServerName, GatewayDomain: "localhost",
		Client:      ClientConfig{UserID: "@mimigw:localhost", Password: "functionalpassword1"},
		Encryption:  EncryptionConfig{PickleKey: testPickleKey},
		DecryptWait: 3 * time.Second,
	}
	if edit != nil {
		edit(&cfg)
	}
	st := openStore(t, dir)
	b := openBus(t, dir)
	out := collectOut(t, b)
	a, err := New(t.Context(), cfg, bridges.Deps{Store: st, Bus: b, Assets: newAssetsAt(t, dir), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = a.Stop(c)
	})
	select {
	case <-a.FirstSync():
	case <-time.After(servertest.Scale(30 * time.Second)):
		t.Fatal("functional account did not complete its first sync")
	}
	sub, err := bridges.Run(context.Background(), b, "matrix-client-test", a, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = sub.Stop(c)
	})
	return hs, a, b, out
}

// TestClientModeEncrypted runs the TI-Messenger set-up: a functional account logs in as an ordinary
// client with its own E2EE device, joins the encrypted room a user invites it to, relays the user's
// messages to MIMI and MIMI messages back with per-message attribution.
func TestClientModeEncrypted(t *testing.T) {
	ctx := t.Context()
	hs, a, b, out := startClientEnv(t, nil)

	// Labelled as a bot.
	prof, err := a.client.GetOwnDisplayName(ctx)
	if err != nil || prof.DisplayName != DefaultClientName+" "+botLabel {
		t.Errorf("functional account display name = %v (%v), want the bot label", prof, err)
	}

	// Invite permissions: block all, except alice.
	if err := a.client.SetAccountData(ctx, permissionConfigType, map[string]any{
		"defaultSetting": "block all", "userExceptions": map[string]any{"@alice:localhost": map[string]any{}},
	}); err != nil {
		t.Fatal(err)
	}
	carol := newE2EEClient(t, hs, "carol", "carolpassword123")
	blocked := carol.createEncryptedRoom(t, a.client.UserID)
	waitFor(t, 30*time.Second, "the blocked invite to be rejected", func() bool {
		return testutil.ToFloat64(a.metrics.inbound.WithLabelValues("invite_rejected")) >= 1
	})
	if _, ok, _ := a.portals.ByMatrix(ctx, blocked); ok {
		t.Error("a blocked invite created a portal")
	}

	alice := newE2EEClient(t, hs, "alice", "alicepassword123")
	room := alice.createEncryptedRoom(t, a.client.UserID)
	alice.waitJoined(t, room, a.client.UserID)
	roomURI, _ := RoomURIOf("localhost", room)
	// The invite of the functional account starts the MIMI room with alice, not with the account.
	out.wait(t, "alice's join as a membership envelope", func(env *event.Envelope) bool {
		return env.Kind == event.KindMembership && env.Room == roomURI && env.Membership.Action == event.MembershipJoin &&
			env.Sender == "mimi://localhost/u/alice" && env.Membership.Target == env.Sender
	})

	ids := matrixToMIMISequence(t, alice, room, out)

	// MIMI → Matrix: relayed by the functional account with attribution, encrypted.
	in := mimiMessage(t, event.KindMessage, roomURI, bobURI, 1, func(m *content.Message) {
		m.Body = textBody(content.TypePlain, "hello from MIMI")
		m.InReplyTo = (*content.MessageID)(ids.text.MessageID)
	})
	if err := b.PublishIn(ctx, event.NetworkMatrix, in); err != nil {
		t.Fatal(err)
	}
	got := alice.waitEvent(t, "the relayed message", func(ev *mevent.Event) bool {
		return ev.Sender == a.client.UserID && ev.Type == mevent.EventMessage
	})
	c := got.Content.AsMessage()
	if !got.Mautrix.WasEncrypted {
		t.Error("relayed message was not encrypted")
	}
	if c.Body != "bob (amt-b.example): hello from MIMI" {
		t.Errorf("fallback body = %q", c.Body)
	}
	if c.BeeperPerMessageProfile == nil || c.BeeperPerMessageProfile.ID != string(bobURI) || c.BeeperPerMessageProfile.Displayname != "bob (amt-b.example)" {
		t.Errorf("per-message profile = %+v", c.BeeperPerMessageProfile)
	}
	if c.FormattedBody != "<strong data-mx-profile-fallback>bob (amt-b.example): </strong>hello from MIMI" {
		t.Errorf("formatted fallback = %q", c.FormattedBody)
	}
	if c.RelatesTo == nil || c.RelatesTo.InReplyTo == nil || c.RelatesTo.InReplyTo.EventID != id.EventID(ids.text.Origin.Event) {
		t.Errorf("relayed reply relation = %+v", c.RelatesTo)
	}

	// Alice's read receipt on the relayed message becomes a MIMI status report.
	if err := alice.MarkRead(ctx, room, got.ID); err != nil {
		t.Fatal(err)
	}
	rcpt := out.wait(t, "the read receipt", func(env *event.Envelope) bool { return isStatus(env, content.StatusRead) })
	rm, err := content.Decode(rcpt.Content)
	if err != nil {
		t.Fatal(err)
	}
	rep, ok, err := rm.StatusReport()
	if !ok || err != nil || len(rep) != 1 || rep[0].Status != content.StatusRead || rep[0].MessageID != content.MessageID(in.MessageID) ||
		rcpt.Sender != "mimi://localhost/u/alice" {
		t.Errorf("receipt = %+v (%v, %v) from %s", rep, ok, err, rcpt.Sender)
	}

	// The sync token was committed after the events were published.
	if tok, err := a.syncStore.LoadNextBatch(ctx, a.client.UserID); err != nil || tok == "" {
		t.Errorf("sync token not persisted: %q %v", tok, err)
	}

	clientModeRoles(t, alice, room, roomURI, b, a)
}

// clientModeRoles: the functional account shows a MIMI role change as a power-level change only
// when it has the power, else as a notice.
func clientModeRoles(t *testing.T, alice *e2eeClient, room id.RoomID, roomURI event.RoomURI, b *bus.NATS, a *Adapter) {
	t.Helper()
	ctx := t.Context()
	roleTo := func(n int, target event.UserURI, r event.Role) {
		t.Helper()
		env := &event.Envelope{ID: event.EventID(fmt.Sprintf("mimi:client-role-%d", n)), Kind: event.KindMembership, Room: roomURI,
			Sender: bobURI, Timestamp: time.Now().UTC(), Origin: event.Origin{Network: event.NetworkMIMI},
			Membership: &event.Membership{Action: event.MembershipRole, Target: target, Role: r}}
		if err := b.PublishIn(ctx, event.NetworkMatrix, env); err != nil {
			t.Fatal(err)
		}
	}
	dave := event.UserURI("mimi://localhost/u/dave")
	roleTo(1, dave, 3) // the account is at level 0
	notice := alice.waitEvent(t, "the role notice", func(ev *mevent.Event) bool {
		return ev.Sender == a.client.UserID && ev.Type == mevent.EventMessage && ev.Content.AsMessage().MsgType == mevent.MsgNotice
	})
	if body := notice.Content.AsMessage().Body; !strings.Contains(body, "@dave:localhost is now an admin") {
		t.Errorf("role notice %q", body)
	}
	pl := &mevent.PowerLevelsEventContent{}
	if err := alice.StateEvent(ctx, room, mevent.StatePowerLevels, "", pl); err != nil {
		t.Fatal(err)
	}
	if l := pl.GetUserLevel("@dave:localhost"); l != 0 {
		t.Fatalf("dave's level %d after a change the account may not make", l)
	}
	// Alice gives the account 100: the next change is a power-level change.
	pl.SetUserLevel(a.client.UserID, 100)
	if _, err := alice.SendStateEvent(ctx, room, mevent.StatePowerLevels, "", pl); err != nil {
		t.Fatal(err)
	}
	roleTo(2, dave, 3)
	waitFor(t, 30*time.Second, "dave at 50", func() bool {
		pl := &mevent.PowerLevelsEventContent{}
		return alice.StateEvent(ctx, room, mevent.StatePowerLevels, "", pl) == nil && pl.GetUserLevel("@dave:localhost") == 50
	})
}

// sequenceIDs are the envelopes matrixToMIMISequence saw.
type sequenceIDs struct{ text, reply *event.Envelope }

// matrixToMIMISequence has a Matrix user send text, a reply, an edit, a reaction, its removal, a
// redaction and an encrypted image, and checks each canonical envelope on the bus.
func matrixToMIMISequence(t *testing.T, alice *e2eeClient, room id.RoomID, out *outbox) sequenceIDs {
	t.Helper()
	ctx := t.Context()
	byOrigin := func(what string, ev id.EventID) *event.Envelope {
		return out.wait(t, what, func(env *event.Envelope) bool { return env.Origin.Event == event.NativeEventID(ev) })
	}
	textID := alice.send(t, room, &mevent.MessageEventContent{MsgType: mevent.MsgEmote, Body: "waves"})
	text := byOrigin("text", textID)
	if _, plain, _, _ := decodeText(t, text.Content); text.Kind != event.KindMessage || plain != "/me waves" {
		t.Errorf("emote: kind %s text %q", text.Kind, plain)
	}
	replyID := alice.send(t, room, &mevent.MessageEventContent{MsgType: mevent.MsgText, Body: "a reply",
		RelatesTo: &mevent.RelatesTo{InReplyTo: &mevent.InReplyTo{EventID: textID}}})
	reply := byOrigin("reply", replyID)
	if m, _, _, _ := decodeText(t, reply.Content); m.InReplyTo == nil || *m.InReplyTo != content.MessageID(text.MessageID) {
		t.Errorf("reply in reply to %v", m.InReplyTo)
	}
	ec := &mevent.MessageEventContent{MsgType: mevent.MsgText, Body: "edited"}
	ec.SetEdit(replyID)
	edit := byOrigin("edit", alice.send(t, room, ec))
	if m, plain, _, _ := decodeText(t, edit.Content); edit.Kind != event.KindEdit || plain != "edited" || m.Replaces == nil || *m.Replaces != content.MessageID(reply.MessageID) {
		t.Errorf("edit: kind %s text %q replaces %v", edit.Kind, plain, m.Replaces)
	}
	reactID := alice.sendType(t, room, mevent.EventReaction, &mevent.ReactionEventContent{RelatesTo: mevent.RelatesTo{
		Type: mevent.RelAnnotation, EventID: textID, Key: "🎉"}})
	react := byOrigin("reaction", reactID)
	if m, plain, _, _ := decodeText(t, react.Content); react.Kind != event.KindReaction || plain != "🎉" || m.InReplyTo == nil {
		t.Errorf("reaction: kind %s key %q", react.Kind, plain)
	}
	un, err := alice.RedactEvent(ctx, room, reactID)
	if err != nil {
		t.Fatal(err)
	}
	if env := byOrigin("unreact", un.EventID); env.Kind != event.KindReaction {
		t.Errorf("unreact kind %s", env.Kind)
	}
	del, err := alice.RedactEvent(ctx, room, replyID)
	if err != nil {
		t.Fatal(err)
	}
	if env := byOrigin("delete", del.EventID); env.Kind != event.KindDelete {
		t.Errorf("delete kind %s", env.Kind)
	}
	img := []byte("GIF89a tiny test image")
	f := attachment.NewEncryptedFile()
	ct := append([]byte(nil), img...)
	f.EncryptInPlace(ct)
	up, err := alice.UploadBytes(ctx, ct, "application/octet-stream")
	if err != nil {
		t.Fatal(err)
	}
	imgEnv := byOrigin("image", alice.send(t, room, &mevent.MessageEventContent{MsgType: mevent.MsgImage, Body: "a caption",
		FileName: "tiny.gif", Info: &mevent.FileInfo{MimeType: "image/gif", Size: len(img)},
		File: &mevent.EncryptedFileInfo{EncryptedFile: *f, URL: up.ContentURI.CUString()}}))
	m, plain, _, _ := decodeText(t, imgEnv.Content)
	mp, ok := m.Body.Body.(content.MultiPart)
	if !ok || len(mp.Parts) != 2 || plain != "a caption" {
		t.Fatalf("image with caption body = %#v", m.Body.Body)
	}
	xp := mp.Parts[1].Body.(content.ExternalPart)
	if xp.ContentType != "image/gif" || xp.Filename != "tiny.gif" {
		t.Errorf("image part = %+v", xp)
	}
	return sequenceIDs{text: text, reply: reply}
}
