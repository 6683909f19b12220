package matrix

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"maunium.net/go/mautrix"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

const aliceURI = event.UserURI("mimi://localhost/u/alice")

// portalRequest is what the provider publishes when a partner's Welcome adds a local user.
func portalRequest(id string, room event.RoomURI, inviter, target event.UserURI) *event.Envelope {
	return &event.Envelope{ID: event.EventID("mimi:" + id), Kind: event.KindPortalRequest, Room: room, Sender: inviter,
		Timestamp: time.Now().UTC(), Origin: event.Origin{Network: event.NetworkMIMI},
		Membership: &event.Membership{Action: event.MembershipInvite, Target: target}}
}

// notice is a KindNotice for alice.
func notice(id string, room event.RoomURI, n event.Notice, origin event.Origin) *event.Envelope {
	return &event.Envelope{ID: event.EventID("mimi:" + id), Kind: event.KindNotice, Room: room, Sender: aliceURI,
		Timestamp: time.Now().UTC(), Origin: origin, Notice: &n}
}

func publishIn(t testing.TB, b *bus.NATS, envs ...*event.Envelope) {
	t.Helper()
	for _, env := range envs {
		if err := b.PublishIn(t.Context(), event.NetworkMatrix, env); err != nil {
			t.Fatal(err)
		}
	}
}

func isInvite(user id.UserID) func(*mevent.Event) bool {
	return func(ev *mevent.Event) bool {
		return ev.Type == mevent.StateMember && ev.GetStateKey() == string(user) && ev.Content.AsMember().Membership == mevent.MembershipInvite
	}
}

// TestAppservicePortalRequest: a room a partner starts with a local user becomes a portal that
// invites the user herself (by the inviter's ghost, or by the bot when the inviter is not known),
// never a ghost of her, with is_direct for a 1:1 (so her client shows a direct chat); the
// gateway's own invites are not relayed back to MIMI; a notice about a
// failed invite is the bot's m.notice in the room (also one that a 1:1's fixed membership
// refused), and the invitee's ghost leaves.
func TestAppservicePortalRequest(t *testing.T) {
	e := startAppserviceEnv(t)
	ctx := t.Context()
	alice := newE2EEClient(t, e.hs, "alice", "alicepassword123")
	bobGhost := e.adapter.ghosts.UserID(bobURI)
	aliceGhost := e.adapter.ghosts.UserID(aliceURI)

	dm := event.RoomURI("mimi://amt-b.example/r/dm-1")
	pr := portalRequest("portal-1", dm, bobURI, aliceURI)
	pr.Membership.Direct = true
	publishIn(t, e.bus, pr)
	inv := alice.waitEvent(t, "alice's invite to the 1:1 portal", isInvite("@alice:localhost"))
	if !inv.Content.AsMember().IsDirect {
		t.Error("the invite into the 1:1 portal is not is_direct: alice's client shows no direct chat")
	}
	portal, ok, err := e.adapter.portals.ByMIMI(ctx, dm)
	if err != nil || !ok || inv.RoomID != portal {
		t.Fatalf("portal of %s = %s (%v, %v); invite into %s", dm, portal, ok, err, inv.RoomID)
	}
	if inv.Sender != bobGhost {
		t.Errorf("invite sent by %s, want the inviter's ghost %s", inv.Sender, bobGhost)
	}
	if _, err := alice.JoinRoomByID(ctx, portal); err != nil {
		t.Fatal(err)
	}
	e.out.wait(t, "alice's join", func(env *event.Envelope) bool {
		return env.Kind == event.KindMembership && env.Room == dm && env.Sender == aliceURI && env.Membership.Action == event.MembershipJoin
	})

	// The partner's Welcome named only alice (the provider's portal request before it names the
	// inviter): the bot invites her.
	group := event.RoomURI("mimi://amt-b.example/r/ward-7")
	publishIn(t, e.bus, portalRequest("portal-2", group, aliceURI, aliceURI))
	inv2 := alice.waitEvent(t, "alice's invite to the group portal", func(ev *mevent.Event) bool {
		return isInvite("@alice:localhost")(ev) && ev.RoomID != portal
	})
	if inv2.Sender != e.adapter.botUserID() || inv2.Content.AsMember().IsDirect {
		t.Errorf("invite sent by %s (is_direct %v), want the bot's, not direct", inv2.Sender, inv2.Content.AsMember().IsDirect)
	}
	if _, err := alice.JoinRoomByID(ctx, inv2.RoomID); err != nil {
		t.Fatal(err)
	}
	e.out.wait(t, "alice's join of the group", func(env *event.Envelope) bool {
		return env.Kind == event.KindMembership && env.Room == group && env.Sender == aliceURI && env.Membership.Action == event.MembershipJoin
	})
	var count int
	if err := e.st.QueryRowContext(ctx, `SELECT COUNT(*) FROM matrix_ghost WHERE user_id = ?`, string(aliceGhost)).Scan(&count); err != nil || count != 0 {
		t.Errorf("alice has a ghost (%d rows, %v)", count, err)
	}
	for _, env := range e.out.all() {
		if env.Kind == event.KindMembership && (env.Sender != aliceURI || env.Membership.Target != aliceURI) {
			t.Errorf("relayed to MIMI: %s action %d by %s of %s", env.Room, env.Membership.Action, env.Sender, env.Membership.Target)
		}
	}

	// A failed invite: the bot says so in the room, and the invitee's ghost leaves.
	carol := event.UserURI("mimi://amt-b.example/u/carol")
	carolGhost := e.adapter.ghosts.UserID(carol)
	publishIn(t, e.bus, &event.Envelope{ID: "mimi:carol-joins", Kind: event.KindMembership, Room: group, Sender: bobURI,
		Timestamp: time.Now().UTC(), Origin: event.Origin{Network: event.NetworkMIMI}, Membership: &event.Membership{Action: event.MembershipJoin, Target: carol}})
	alice.waitJoined(t, inv2.RoomID, carolGhost)
	publishIn(t, e.bus, notice("notice-1", group, event.Notice{Code: event.NoticeInviteFailed, Correlation: "c0ffee12", Target: carol,
		Reason: "userUnknown", Partner: "amt-b.example"}, event.Origin{Network: event.NetworkMIMI}))
	n := alice.waitEvent(t, "the bot's notice", func(ev *mevent.Event) bool {
		return ev.RoomID == inv2.RoomID && ev.Sender == e.adapter.botUserID() && ev.Type == mevent.EventMessage
	})
	c := n.Content.AsMessage()
	if c.MsgType != mevent.MsgNotice || c.Body != "carol (amt-b.example) could not be added to this conversation: amt-b.example has no such user. (reference c0ffee12)" {
		t.Errorf("notice %s %q", c.MsgType, c.Body)
	}
	if !n.Mautrix.WasEncrypted {
		t.Error("the notice in an encrypted portal was not encrypted")
	}
	if c.Mentions == nil || len(c.Mentions.UserIDs) != 1 || c.Mentions.UserIDs[0] != "@alice:localhost" {
		t.Errorf("notice mentions %+v, want alice", c.Mentions)
	}
	alice.waitEvent(t, "carol's ghost leaving", func(ev *mevent.Event) bool {
		return ev.RoomID == inv2.RoomID && ev.Type == mevent.StateMember && ev.GetStateKey() == string(carolGhost) &&
			ev.Content.AsMember().Membership == mevent.MembershipLeave
	})

	// A refused message: the notice answers alice's message itself.
	msgID := alice.send(t, portal, &mevent.MessageEventContent{MsgType: mevent.MsgText, Body: "are you there?"})
	sent := e.out.wait(t, "alice's message", func(env *event.Envelope) bool { return env.Origin.Event == event.NativeEventID(msgID) })
	publishIn(t, e.bus, notice("notice-2", dm, event.Notice{Code: event.NoticeRefused, Correlation: "feed01", Event: sent.ID,
		Native: sent.Origin.Event, Partner: "amt-b.example"}, sent.Origin))
	r := alice.waitEvent(t, "the notice on alice's message", func(ev *mevent.Event) bool {
		return ev.RoomID == portal && ev.Sender == e.adapter.botUserID() && ev.Type == mevent.EventMessage
	})
	rc := r.Content.AsMessage()
	if rc.Body != "This message was not delivered: amt-b.example refused it. (reference feed01)" ||
		rc.RelatesTo == nil || rc.RelatesTo.InReplyTo == nil || rc.RelatesTo.InReplyTo.EventID != msgID {
		t.Errorf("notice %q relates to %+v", rc.Body, rc.RelatesTo)
	}

	// An invite into the 1:1 that its fixed membership refuses: the bot says why, in words.
	publishIn(t, e.bus, notice("notice-fixed", dm, event.Notice{Code: event.NoticeInviteFailed, Correlation: "f1xed", Target: carol,
		Reason: "fixedMembership", Partner: "amt-b.example"}, event.Origin{Network: event.NetworkMIMI}))
	fx := alice.waitEvent(t, "the notice about the 1:1", func(ev *mevent.Event) bool {
		return ev.RoomID == portal && ev.Sender == e.adapter.botUserID() && ev.Type == mevent.EventMessage && strings.Contains(ev.Content.AsMessage().Body, "f1xed")
	})
	if body := fx.Content.AsMessage().Body; body != "carol (amt-b.example) could not be added to this conversation: it is a one-to-one conversation, "+
		"and nobody else can join it. To talk with more people, start a new group conversation. (reference f1xed)" {
		t.Errorf("1:1 notice %q", body)
	}

	// A notice for a room without a portal is logged and acknowledged.
	publishIn(t, e.bus, notice("notice-3", "mimi://amt-b.example/r/gone", event.Notice{Code: event.NoticeRoomFailed, Correlation: "x1"},
		event.Origin{Network: event.NetworkMIMI}))
	waitFor(t, 30*time.Second, "the notice without a portal", func() bool {
		return testutil.ToFloat64(e.adapter.metrics.outbound.WithLabelValues("notice", "no_portal")) == 1
	})
	if _, ok, _ := e.adapter.portals.ByMIMI(ctx, "mimi://amt-b.example/r/gone"); ok {
		t.Error("a notice created a portal")
	}
}

// answerTo waits for the functional account's notice in reply to event ev.
func answerTo(t *testing.T, c *e2eeClient, account id.UserID, ev id.EventID) string {
	t.Helper()
	got := c.waitEvent(t, "the answer to "+string(ev), func(e *mevent.Event) bool {
		if e.Sender != account || e.Type != mevent.EventMessage {
			return false
		}
		m := e.Content.AsMessage()
		return m.MsgType == mevent.MsgNotice && m.RelatesTo != nil && m.RelatesTo.InReplyTo != nil && m.RelatesTo.InReplyTo.EventID == ev
	})
	if !got.Mautrix.WasEncrypted {
		t.Errorf("answer %q was not encrypted", got.Content.AsMessage().Body)
	}
	return got.Content.AsMessage().Body
}

// TestClientModeConversations: in client mode a user addresses partner users from her own app
// (commands to the functional account, answered in the room, in English or German; an invite of a
// ghost-style ID), a partner-started conversation reaches her as the functional account's
// invitation into a new room, reactions and deletions say whose they are, and the functional
// account is never a MIMI member.
func TestClientModeConversations(t *testing.T) {
	ctx := t.Context()
	hs, a, b, out := startClientEnv(t, nil)
	account := a.client.UserID
	alice := newE2EEClient(t, hs, "alice", "alicepassword123")
	room := alice.createEncryptedRoom(t, account)
	alice.waitJoined(t, room, account)
	roomURI, _ := RoomURIOf("localhost", room)
	out.wait(t, "alice's join", func(env *event.Envelope) bool {
		return env.Kind == event.KindMembership && env.Room == roomURI && env.Membership.Action == event.MembershipJoin && env.Sender == aliceURI
	})

	// Alone with the account, commands need no prefix and are never relayed.
	text := func(body string) id.EventID {
		return alice.send(t, room, &mevent.MessageEventContent{MsgType: mevent.MsgText, Body: body})
	}
	helpID := text("help")
	if body := answerTo(t, alice, account, helpID); !strings.Contains(body, "invite ADDRESS") || !strings.Contains(body, "!mimi") {
		t.Errorf("help answer %q", body)
	}
	if body := answerTo(t, alice, account, text("Hilfe")); !strings.Contains(body, "einladen ADRESSE") {
		t.Errorf("German help answer %q", body)
	}
	inviteID := text("einladen bob@amt-b.example")
	if body := answerTo(t, alice, account, inviteID); body != "bob (amt-b.example) wird eingeladen. Falls das nicht gelingt, erfahren Sie es hier." {
		t.Errorf("invite answer %q", body)
	}
	inv := out.wait(t, "bob's invite", func(env *event.Envelope) bool { return env.Origin.Event == event.NativeEventID(inviteID) })
	if inv.Kind != event.KindMembership || inv.Sender != aliceURI || inv.Room != roomURI ||
		*inv.Membership != (event.Membership{Action: event.MembershipInvite, Target: bobURI}) {
		t.Errorf("invite envelope %+v %+v (a room that is not a direct chat starts no 1:1)", inv, inv.Membership)
	}
	// In a direct chat with the account (is_direct), alone with it, invite starts a 1:1.
	dmRoom := alice.CreateRoom(t, "", true, true, account)
	alice.waitJoined(t, dmRoom, account)
	dmInviteID := alice.send(t, dmRoom, &mevent.MessageEventContent{MsgType: mevent.MsgText, Body: "invite bob@amt-b.example"})
	if env := out.wait(t, "bob's invite into the direct chat", func(env *event.Envelope) bool { return env.Origin.Event == event.NativeEventID(dmInviteID) }); env.Kind != event.KindMembership || !env.Membership.Direct {
		t.Errorf("invite in a direct chat with the account: %s %+v, want a 1:1 invite", env.Kind, env.Membership)
	}
	if body := answerTo(t, alice, account, text("!mimi invite bob")); !strings.Contains(body, `"bob" is not an address I can invite`) {
		t.Errorf("bad address answer %q", body)
	}
	if body := answerTo(t, alice, account, text("!mimi frobnicate")); !strings.Contains(body, `I do not know the command "frobnicate"`) {
		t.Errorf("unknown command answer %q", body)
	}
	helloID := text("hello bob")
	hello := out.wait(t, "an ordinary message", func(env *event.Envelope) bool { return env.Origin.Event == event.NativeEventID(helloID) })
	if hello.Kind != event.KindMessage {
		t.Errorf("ordinary message relayed as %s", hello.Kind)
	}
	for _, ev := range []id.EventID{helpID, inviteID} {
		for _, env := range out.all() {
			if env.Origin.Event == event.NativeEventID(ev) && env.Kind != event.KindMembership {
				t.Errorf("command %s relayed as %s", ev, env.Kind)
			}
		}
	}

	// An invite of a ghost-style ID names the partner user, also in client mode.
	erinGhost := id.UserID("@mimi_amt-b.example_erin:localhost")
	if _, err := alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: erinGhost}); err != nil {
		t.Fatal(err)
	}
	out.wait(t, "erin's invite", func(env *event.Envelope) bool {
		return env.Kind == event.KindMembership && env.Membership.Action == event.MembershipInvite &&
			env.Membership.Target == "mimi://amt-b.example/u/erin" && env.Sender == aliceURI
	})

	// With another person in the room, a command needs the prefix (or a mention of the account).
	if _, err := alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: "@carol:localhost"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "carol in the account's view of the room", func() bool {
		return !a.aloneWith(ctx, room, alice.UserID)
	})
	bareID := text("invite dave@amt-b.example")
	if env := out.wait(t, "a bare command among people", func(env *event.Envelope) bool { return env.Origin.Event == event.NativeEventID(bareID) }); env.Kind != event.KindMessage {
		t.Errorf("a bare command among people became %s", env.Kind)
	}
	mentionID := alice.send(t, room, &mevent.MessageEventContent{MsgType: mevent.MsgText, Body: "MIMI Gateway (Chatbot): invite mimi://amt-b.example/u/dave",
		Mentions: &mevent.Mentions{UserIDs: []id.UserID{account}}})
	if body := answerTo(t, alice, account, mentionID); body != "Inviting dave (amt-b.example). You will be told here if that fails." {
		t.Errorf("answer to a mention %q", body)
	}
	if env := out.wait(t, "dave's invite", func(env *event.Envelope) bool { return env.Origin.Event == event.NativeEventID(mentionID) }); env.Membership.Direct {
		t.Error("an invite among people was marked as starting a 1:1")
	}

	// MIMI → Matrix: bob's message, his reaction (a notice naming him), its removal and his
	// deletion (redactions giving the reason).
	bobMsg := mimiMessage(t, event.KindMessage, roomURI, bobURI, 1, func(m *content.Message) { m.Body = textBody(content.TypePlain, "hi alice") })
	react := mimiMessage(t, event.KindReaction, roomURI, bobURI, 2, func(m *content.Message) {
		m.InReplyTo = (*content.MessageID)(hello.MessageID)
		m.Body = content.NestedPart{Disposition: content.DispReaction, Body: content.SinglePart{ContentType: content.TypePlain, Content: []byte("👍")}}
	})
	publishIn(t, b, bobMsg, react)
	relayed := alice.waitEvent(t, "bob's message", func(ev *mevent.Event) bool {
		return ev.Sender == account && ev.Type == mevent.EventMessage && strings.HasSuffix(ev.Content.AsMessage().Body, "hi alice")
	})
	rx := alice.waitEvent(t, "bob's reaction", func(ev *mevent.Event) bool {
		return ev.Sender == account && ev.Type == mevent.EventMessage && strings.Contains(ev.Content.AsMessage().Body, "reacted")
	})
	rc := rx.Content.AsMessage()
	if rc.Body != "bob (amt-b.example) reacted with 👍" || rc.MsgType != mevent.MsgNotice || rc.RelatesTo == nil || rc.RelatesTo.InReplyTo == nil ||
		rc.RelatesTo.InReplyTo.EventID != helloID || rc.BeeperPerMessageProfile == nil || rc.BeeperPerMessageProfile.ID != string(bobURI) {
		t.Errorf("reaction notice %q %s relates %+v profile %+v", rc.Body, rc.MsgType, rc.RelatesTo, rc.BeeperPerMessageProfile)
	}
	unreact := mimiMessage(t, event.KindReaction, roomURI, bobURI, 3, func(m *content.Message) {
		m.InReplyTo = (*content.MessageID)(hello.MessageID)
		m.Replaces = (*content.MessageID)(react.MessageID)
		m.Body = content.NestedPart{Disposition: content.DispReaction, Body: content.NullPart{}}
	})
	del := mimiMessage(t, event.KindDelete, roomURI, bobURI, 4, func(m *content.Message) { m.Replaces = (*content.MessageID)(bobMsg.MessageID) })
	publishIn(t, b, unreact, del)
	for _, target := range []id.EventID{rx.ID, relayed.ID} {
		r := alice.waitEvent(t, "a redaction", func(ev *mevent.Event) bool { return ev.Type == mevent.EventRedaction && ev.Redacts == target })
		if r.Sender != account || r.Content.AsRedaction().Reason != "deleted by bob (amt-b.example)" {
			t.Errorf("redaction of %s by %s, reason %q", target, r.Sender, r.Content.AsRedaction().Reason)
		}
	}

	// Partner users have no account here: their coming and going is told.
	erin := event.UserURI("mimi://amt-b.example/u/erin")
	for i, action := range []event.MembershipAction{event.MembershipJoin, event.MembershipLeave} {
		publishIn(t, b, &event.Envelope{ID: event.EventID(fmt.Sprintf("mimi:erin-%d", i)), Kind: event.KindMembership, Room: roomURI, Sender: erin,
			Timestamp: time.Now().UTC(), Origin: event.Origin{Network: event.NetworkMIMI}, Membership: &event.Membership{Action: action, Target: erin}})
	}
	for _, want := range []string{"erin (amt-b.example) was added to this conversation.", "erin (amt-b.example) left this conversation."} {
		alice.waitEvent(t, want, func(ev *mevent.Event) bool {
			return ev.Sender == account && ev.Type == mevent.EventMessage && ev.Content.AsMessage().Body == want &&
				ev.Content.AsMessage().MsgType == mevent.MsgNotice
		})
	}

	// A partner starts a conversation: the account invites alice into a new room and says who.
	chat := event.RoomURI("mimi://amt-b.example/r/chat-2")
	pr := portalRequest("client-portal", chat, bobURI, aliceURI)
	pr.Membership.Direct = true
	publishIn(t, b, pr)
	inv2 := alice.waitEvent(t, "the invitation to the partner's room", func(ev *mevent.Event) bool {
		return isInvite("@alice:localhost")(ev) && ev.RoomID != room
	})
	if inv2.Sender != account || !inv2.Content.AsMember().IsDirect {
		t.Errorf("invited by %s (is_direct %v), want the functional account's direct-chat invite", inv2.Sender, inv2.Content.AsMember().IsDirect)
	}
	if _, err := alice.JoinRoomByID(ctx, inv2.RoomID); err != nil {
		t.Fatal(err)
	}
	intro := alice.waitEvent(t, "who started it", func(ev *mevent.Event) bool {
		return ev.RoomID == inv2.RoomID && ev.Sender == account && ev.Type == mevent.EventMessage
	})
	if body := intro.Content.AsMessage().Body; body != "bob (amt-b.example) started this conversation with you through MIMI." || !intro.Mautrix.WasEncrypted {
		t.Errorf("intro %q (encrypted %v)", body, intro.Mautrix.WasEncrypted)
	}
	out.wait(t, "alice's join of the partner's room", func(env *event.Envelope) bool {
		return env.Kind == event.KindMembership && env.Room == chat && env.Sender == aliceURI && env.Membership.Action == event.MembershipJoin
	})
	// Another local user added later is invited into the same room, without a second intro.
	hs.CreateUser(t, "dave", "davepassword1234")
	publishIn(t, b, portalRequest("client-portal-dave", chat, bobURI, "mimi://localhost/u/dave"))
	alice.waitEvent(t, "dave's invitation", func(ev *mevent.Event) bool {
		return ev.RoomID == inv2.RoomID && isInvite("@dave:localhost")(ev) && ev.Sender == account
	})
	publishIn(t, b, mimiMessage(t, event.KindMessage, chat, bobURI, 5, func(m *content.Message) { m.Body = textBody(content.TypePlain, "see you") }))
	alice.waitEvent(t, "bob's message in his room", func(ev *mevent.Event) bool {
		return ev.RoomID == inv2.RoomID && ev.Sender == account && ev.Content.AsMessage().Body == "bob (amt-b.example): see you"
	})
	if n := len(alice.Events(func(ev *mevent.Event) bool {
		return ev.RoomID == inv2.RoomID && ev.Type == mevent.EventMessage && strings.Contains(ev.Content.AsMessage().Body, "started this conversation")
	})); n != 1 {
		t.Errorf("%d intros in the partner's room, want 1", n)
	}

	// A room with members before the account was invited: they join the MIMI room with it.
	carol := newE2EEClient(t, hs, "carol", "carolpassword123")
	team := alice.createEncryptedRoom(t, carol.UserID)
	if _, err := carol.JoinRoomByID(ctx, team); err != nil {
		t.Fatal(err)
	}
	alice.waitJoined(t, team, carol.UserID)
	if _, err := alice.InviteUser(ctx, team, &mautrix.ReqInviteUser{UserID: account}); err != nil {
		t.Fatal(err)
	}
	teamURI, _ := RoomURIOf("localhost", team)
	out.wait(t, "carol's join of the team room", func(env *event.Envelope) bool {
		return env.Kind == event.KindMembership && env.Room == teamURI && env.Sender == "mimi://localhost/u/carol" &&
			env.Membership.Action == event.MembershipJoin && env.Membership.Target == env.Sender
	})

	// The account is never a MIMI member, and no envelope comes from it.
	self, _ := UserURIOf(account)
	for _, env := range out.all() {
		if env.Sender == self || env.Kind == event.KindMembership && env.Membership.Target == self {
			t.Errorf("envelope about the functional account: %+v", env)
		}
	}
}

// TestUnreadableNotice: an encrypted message whose room key never reaches the gateway (sent
// before its device was in the room, or not shared with it) is not lost without a word: after
// UnreadableNoticeAfter its sender gets a notice in reply, once.
func TestUnreadableNotice(t *testing.T) {
	e := startAppserviceEnv(t, func(c *Config) { c.UnreadableNoticeAfter, c.KeyRequestInterval = time.Millisecond, time.Millisecond })
	alice := newE2EEClient(t, e.hs, "alice", "alicepassword123")
	room := alice.createEncryptedRoom(t, e.adapter.ghosts.UserID(bobURI))
	alice.waitJoined(t, room, e.adapter.botUserID())
	roomURI, _ := RoomURIOf("localhost", room)
	waitPortal(t, e, roomURI)
	// A Megolm event of a session the gateway never received.
	ev := alice.sendType(t, room, mevent.EventEncrypted, map[string]any{"algorithm": "m.megolm.v1.aes-sha2",
		"ciphertext": base64.RawStdEncoding.EncodeToString(append([]byte{3}, make([]byte, 200)...)), "device_id": "NOSUCHDEVICE",
		"sender_key": key32(1), "session_id": key32(2)})
	var n *mevent.Event
	waitFor(t, 60*time.Second, "the notice about the unreadable message", func() bool {
		e.adapter.parking.Kick()
		got := alice.Events(func(x *mevent.Event) bool {
			c := x.Content.AsMessage()
			return x.Sender == e.adapter.botUserID() && x.Type == mevent.EventMessage && c.RelatesTo != nil && c.RelatesTo.InReplyTo != nil &&
				c.RelatesTo.InReplyTo.EventID == ev
		})
		if len(got) > 0 {
			n = got[0]
		}
		return n != nil
	})
	c := n.Content.AsMessage()
	if !strings.HasPrefix(c.Body, "The gateway cannot decrypt this message") || c.MsgType != mevent.MsgNotice ||
		c.Mentions == nil || len(c.Mentions.UserIDs) != 1 || c.Mentions.UserIDs[0] != alice.UserID {
		t.Errorf("notice %s %q mentions %+v", c.MsgType, c.Body, c.Mentions)
	}
	e.adapter.parking.Kick()
	waitFor(t, 30*time.Second, "another retry", func() bool {
		return testutil.ToFloat64(e.adapter.metrics.DecryptErrors.WithLabelValues("no_session")) >= 1
	})
	if got := testutil.ToFloat64(e.adapter.metrics.inbound.WithLabelValues("unreadable_notice")); got != 1 {
		t.Errorf("%v unreadable notices, want 1", got)
	}
	// The key is asked for again while the event waits (a request may be lost).
	waitFor(t, 30*time.Second, "a repeated key request", func() bool {
		e.adapter.parking.Kick()
		return testutil.ToFloat64(e.adapter.metrics.KeyRequests) >= 2
	})
}

// TestHomeserverRestartRenewsRoomKeys: after the homeserver was unreachable (it may have lost the
// to-device messages that carried room keys), the gateway device shares a new outbound session
// with its next message, and the Matrix user reads it.
func TestHomeserverRestartRenewsRoomKeys(t *testing.T) {
	e := startAppserviceEnv(t)
	ctx := t.Context()
	alice := newE2EEClient(t, e.hs, "alice", "alicepassword123")
	ghost := e.adapter.ghosts.UserID(bobURI)
	room := alice.createEncryptedRoom(t, ghost)
	alice.waitJoined(t, room, e.adapter.botUserID())
	roomURI, _ := RoomURIOf("localhost", room)
	waitPortal(t, e, roomURI)
	say := func(n int, text string) {
		publishIn(t, e.bus, mimiMessage(t, event.KindMessage, roomURI, bobURI, n, func(m *content.Message) { m.Body = textBody(content.TypePlain, text) }))
		got := alice.waitEvent(t, text, func(ev *mevent.Event) bool {
			return ev.Sender == ghost && ev.Type == mevent.EventMessage && ev.Content.AsMessage().Body == text
		})
		if !got.Mautrix.WasEncrypted {
			t.Errorf("%q was not encrypted", text)
		}
	}
	session := func() id.SessionID {
		s, err := e.adapter.crypto.Machine().CryptoStore.GetOutboundGroupSession(ctx, room)
		if err != nil || s == nil {
			t.Fatalf("outbound session of %s: %v, %v", room, s, err)
		}
		return s.ID()
	}
	// On a loaded machine a sync request may fail before the restart too, and the gateway then
	// renews its session already: the session before the restart is one no renewal replaced
	// while a message used it.
	var before id.SessionID
	var rotations float64
	for n := 1; before == ""; n++ {
		rotations = testutil.ToFloat64(e.adapter.metrics.Rotations)
		say(n, fmt.Sprintf("vor dem Neustart %d", n))
		s, err := e.adapter.crypto.Machine().CryptoStore.GetOutboundGroupSession(ctx, room)
		switch {
		case err != nil:
			t.Fatal(err)
		case s != nil && testutil.ToFloat64(e.adapter.metrics.Rotations) == rotations:
			before = s.ID()
		case n == 3:
			t.Fatalf("the gateway renewed its session during each of %d messages before the restart", n)
		}
	}
	e.hs.Restart(t)
	waitFor(t, 60*time.Second, "the gateway to notice the homeserver is back", func() bool {
		return testutil.ToFloat64(e.adapter.metrics.Rotations) > rotations
	})
	say(10, "nach dem Neustart")
	if after := session(); after == before {
		t.Errorf("the outbound session %s was kept after the homeserver was unreachable", after)
	}
}

// key32 is a 32-byte value in unpadded base64, as Olm keys and Megolm session IDs are written.
func key32(b byte) string {
	return base64.RawStdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32))
}

// waitPortal waits until the invite that made room a portal is on the bus (the portal is recorded
// by then).
func waitPortal(t *testing.T, e *asEnv, room event.RoomURI) {
	t.Helper()
	e.out.wait(t, "the invite into "+string(room), func(env *event.Envelope) bool {
		return env.Kind == event.KindMembership && env.Room == room && env.Membership.Action == event.MembershipInvite
	})
}

// TestAppserviceReadReceipt: a Matrix user's read receipt on a partner's message reaches MIMI as a
// "read" status report in appservice mode too (from the bot's sync).
func TestAppserviceReadReceipt(t *testing.T) {
	e := startAppserviceEnv(t)
	alice := newE2EEClient(t, e.hs, "alice", "alicepassword123")
	ghost := e.adapter.ghosts.UserID(bobURI)
	room := alice.createEncryptedRoom(t, ghost)
	alice.waitJoined(t, room, e.adapter.botUserID())
	roomURI, _ := RoomURIOf("localhost", room)
	waitPortal(t, e, roomURI)
	in := mimiMessage(t, event.KindMessage, roomURI, bobURI, 1, func(m *content.Message) { m.Body = textBody(content.TypePlain, "bitte lesen") })
	publishIn(t, e.bus, in)
	got := alice.waitEvent(t, "bob's message", func(ev *mevent.Event) bool { return ev.Sender == ghost && ev.Type == mevent.EventMessage })
	// Shown to alice, bob's message is reported delivered on her behalf (the portal's one local
	// user).
	dl := e.out.wait(t, "the delivery report", func(env *event.Envelope) bool { return isStatus(env, content.StatusDelivered) })
	if dm, err := content.Decode(dl.Content); err != nil || dl.Sender != aliceURI || dl.Room != roomURI {
		t.Errorf("delivery report from %s in %s (%v)", dl.Sender, dl.Room, err)
	} else if rep, _, _ := dm.StatusReport(); len(rep) != 1 || rep[0].MessageID != content.MessageID(in.MessageID) {
		t.Errorf("delivery report %+v", rep)
	}
	if err := alice.MarkRead(t.Context(), room, got.ID); err != nil {
		t.Fatal(err)
	}
	rcpt := e.out.wait(t, "alice's read receipt", func(env *event.Envelope) bool { return isStatus(env, content.StatusRead) })
	m, err := content.Decode(rcpt.Content)
	if err != nil {
		t.Fatal(err)
	}
	rep, ok, err := m.StatusReport()
	if !ok || err != nil || len(rep) != 1 || rep[0].Status != content.StatusRead || rep[0].MessageID != content.MessageID(in.MessageID) ||
		rcpt.Sender != aliceURI || rcpt.Room != roomURI {
		t.Errorf("receipt %+v (%v, %v) from %s in %s", rep, ok, err, rcpt.Sender, rcpt.Room)
	}
}
