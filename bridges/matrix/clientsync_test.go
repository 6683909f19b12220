package matrix

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"maunium.net/go/mautrix"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/dendritetest"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// startClientRestartable starts Dendrite and a client-mode adapter (functional account
// @mimigw:localhost) that the test can stop and start again on the same store and bus; pub,
// when set, is the adapter's bus.
func startClientRestartable(t *testing.T, pub func(*bus.NATS) bus.Publisher) *asEnv {
	t.Helper()
	dir := t.TempDir()
	e := &asEnv{dir: dir, hs: dendritetest.Start(t)}
	e.hs.CreateUser(t, "mimigw", "functionalpassword1")
	e.cfg = Config{Mode: ModeClient, HomeserverURL: e.hs.URL, ServerName: dendritetest.ServerName, GatewayDomain: "localhost",
		Client:     ClientConfig{UserID: "@mimigw:localhost", Password: "functionalpassword1"},
		Encryption: EncryptionConfig{PickleKey: testPickleKey}, DecryptWait: 3 * time.Second}
	e.st = openStore(t, dir)
	e.bus = openBus(t, dir)
	e.out = collectOut(t, e.bus)
	if pub != nil {
		e.pub = pub(e.bus)
	}
	e.startAdapter(t)
	return e
}

// TestClientModeCatchUp: in client mode a room's history from before the functional account
// joined is not relayed; what Matrix users send while the gateway is down (more events than the
// sync's timeline limit of 50) reaches the bus after the restart once each and in order; the
// direct-chat mark of a room goes when someone leaves it; and a user of this homeserver whom a
// 1:1 refuses (fixed membership) does not keep the Matrix invite.
func TestClientModeCatchUp(t *testing.T) {
	e := startClientRestartable(t, nil)
	ctx := t.Context()
	account := e.adapter.client.UserID
	alice := newE2EEClient(t, e.hs, "alice", "alicepassword123")
	room := alice.CreateRoom(t, "", false, false)
	before := alice.SendText(t, room, "bevor das Gateway im Raum ist")
	if _, err := alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: account}); err != nil {
		t.Fatal(err)
	}
	alice.waitJoined(t, room, account)
	sent := []id.EventID{alice.SendText(t, room, "vor der Pause")}
	e.out.wait(t, "the message before the outage", onBus(sent[0]))

	e.stopAdapter(t)
	for j := range 60 {
		sent = append(sent, alice.SendText(t, room, fmt.Sprintf("während der Pause %d", j+1)))
	}
	e.startAdapter(t)
	waitFor(t, 60*time.Second, "the 60 messages sent during the outage on the bus", func() bool {
		return e.out.find(onBus(sent[len(sent)-1])) != nil
	})
	e.out.checkOnceInOrder(t, sent)
	if e.out.find(onBus(before)) != nil {
		t.Error("a message from before the functional account joined was relayed")
	}

	// A start command's room is kept under a key until the command is done, then the key goes.
	start := alice.SendText(t, room, "start mimi://amt-b.example/u/bob")
	alice.waitEvent(t, "the answer to start", func(ev *mevent.Event) bool {
		m := ev.Content.AsMessage()
		return ev.Sender == account && m.RelatesTo != nil && m.RelatesTo.InReplyTo != nil && m.RelatesTo.InReplyTo.EventID == start
	})
	waitFor(t, 30*time.Second, "the start command's key deleted", func() bool {
		_, err := e.st.KV(scopeKV).Get(ctx, startKey(start))
		return errors.Is(err, store.ErrNotFound)
	})

	// A direct chat with the account: the mark that makes an invite there start a 1:1.
	dm := alice.CreateRoom(t, "", false, true, account)
	alice.waitJoined(t, dm, account)
	kv := e.st.KV(scopeKV)
	waitFor(t, 30*time.Second, "the direct chat marked", func() bool {
		_, err := kv.Get(ctx, directKey(dm))
		return err == nil
	})
	inv := alice.SendText(t, dm, "invite bob@amt-b.example")
	if env := e.out.wait(t, "bob's 1:1 invite", onBus(inv)); env.Membership == nil || !env.Membership.Direct {
		t.Fatalf("invite in the direct chat: %+v, want a 1:1 invite", env.Membership)
	}
	// alice invites carol, a colleague: MIMI refuses (a 1:1). The account may not remove
	// members here (private_chat), so the notice asks alice to withdraw the invite.
	carol := newE2EEClient(t, e.hs, "carol", "carolpassword123")
	carolURI := event.UserURI("mimi://localhost/u/carol")
	refuseCarol := func(room id.RoomID, ref string) *mevent.Event {
		t.Helper()
		if _, err := alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: carol.UserID}); err != nil {
			t.Fatal(err)
		}
		uri, _ := RoomURIOf("localhost", room)
		e.out.wait(t, "carol's invite", func(env *event.Envelope) bool {
			return env.Kind == event.KindMembership && env.Room == uri && env.Membership.Target == carolURI
		})
		publishIn(t, e.bus, notice("carol-fixed-"+ref, uri, event.Notice{Code: event.NoticeInviteFailed, Correlation: ref, Target: carolURI,
			Reason: "fixedMembership"}, event.Origin{Network: event.NetworkMIMI}))
		return alice.waitEvent(t, "the notice about carol", func(ev *mevent.Event) bool {
			return ev.RoomID == room && ev.Sender == account && strings.Contains(ev.Content.AsMessage().Body, ref)
		})
	}
	if body := refuseCarol(dm, "f1xed2").Content.AsMessage().Body; !strings.HasSuffix(body, "(reference f1xed2) Please withdraw the invitation of @carol:localhost.") {
		t.Errorf("notice %q does not ask alice to withdraw the invite", body)
	}
	// Where the account may (trusted_private_chat gives it alice's power), it withdraws the invite.
	resp, err := alice.Client.Client.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true, Invite: []id.UserID{account}})
	if err != nil {
		t.Fatal(err)
	}
	alice.waitJoined(t, resp.RoomID, account)
	if body := refuseCarol(resp.RoomID, "f1xed3").Content.AsMessage().Body; strings.Contains(body, "withdraw") {
		t.Errorf("notice %q asks to withdraw an invite the account withdraws", body)
	}
	alice.waitEvent(t, "carol's invite withdrawn", func(ev *mevent.Event) bool {
		return ev.RoomID == resp.RoomID && ev.Type == mevent.StateMember && ev.GetStateKey() == string(carol.UserID) &&
			ev.Sender == account && ev.Content.AsMember().Membership == mevent.MembershipLeave
	})

	// alice leaves: the room is no longer her direct chat with the account.
	if _, err := alice.LeaveRoom(ctx, dm); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the direct-chat mark deleted", func() bool {
		_, err := kv.Get(ctx, directKey(dm))
		return errors.Is(err, store.ErrNotFound)
	})
}

// failingPublisher is the real bus, failing the publishing of messages whose text contains
// "Fehler" while fail says so.
type failingPublisher struct {
	bus.Publisher
	mu       sync.Mutex
	fail     func(attempt int) bool // the attempt-th failure of this message (from 1) fails
	attempts map[event.EventID]int
}

func (f *failingPublisher) PublishOut(ctx context.Context, env *event.Envelope) error {
	if env.Kind == event.KindMessage && strings.Contains(plainText(env), "Fehler") {
		f.mu.Lock()
		f.attempts[env.ID]++
		n, fail := f.attempts[env.ID], f.fail
		f.mu.Unlock()
		if fail(n) {
			return fmt.Errorf("injected failure %d of %s", n, env.ID)
		}
	}
	return f.Publisher.PublishOut(ctx, env)
}

// Ready reports the real bus's readiness.
func (f *failingPublisher) Ready(ctx context.Context) error {
	return f.Publisher.(*bus.NATS).Ready(ctx)
}

// plainText returns the text parts of a message envelope.
func plainText(env *event.Envelope) string {
	msg, err := content.Decode(env.Content)
	if err != nil {
		return ""
	}
	var b strings.Builder
	for _, ip := range msg.Parts() {
		if sp, ok := ip.Part.Body.(content.SinglePart); ok {
			b.Write(sp.Content)
		}
	}
	return b.String()
}

// TestClientModeFailedEventWaits: in client mode an event that fails is tried again before the
// room's later events, which wait behind it (their order is kept); one that keeps failing while
// the homeserver and the bus answer is given up after maxEventAttempts with a notice to its
// sender, and the room goes on.
func TestClientModeFailedEventWaits(t *testing.T) {
	defer func(n int) { maxEventAttempts = n }(maxEventAttempts)
	maxEventAttempts = 4
	var fp *failingPublisher
	e := startClientRestartable(t, func(b *bus.NATS) bus.Publisher {
		fp = &failingPublisher{Publisher: b, attempts: map[event.EventID]int{}, fail: func(n int) bool { return n <= 2 }}
		return fp
	})
	account := e.adapter.client.UserID
	alice := newE2EEClient(t, e.hs, "alice", "alicepassword123")
	room := alice.CreateRoom(t, "", false, false, account)
	alice.waitJoined(t, room, account)
	sent := []id.EventID{alice.SendText(t, room, "eins")}
	e.out.wait(t, "the first message", onBus(sent[0]))

	// Fails twice, then goes through: the messages after it wait for it.
	sent = append(sent, alice.SendText(t, room, "zwei (Fehler)"), alice.SendText(t, room, "drei"), alice.SendText(t, room, "vier"))
	waitFor(t, 60*time.Second, "the four messages on the bus", func() bool { return e.out.find(onBus(sent[3])) != nil })
	e.out.checkOnceInOrder(t, sent)

	// Fails every time: given up after maxEventAttempts, alice is told, the room goes on.
	fp.mu.Lock()
	fp.fail = func(int) bool { return true }
	fp.mu.Unlock()
	lost := alice.SendText(t, room, "fünf (Fehler)")
	after := alice.SendText(t, room, "sechs")
	n := alice.waitEvent(t, "the notice about the message given up", func(ev *mevent.Event) bool {
		m := ev.Content.AsMessage()
		return ev.RoomID == room && ev.Sender == account && m.MsgType == mevent.MsgNotice && m.RelatesTo != nil &&
			m.RelatesTo.InReplyTo != nil && m.RelatesTo.InReplyTo.EventID == lost
	})
	if body := n.Content.AsMessage().Body; !strings.HasPrefix(body, "The gateway could not pass this message on") {
		t.Errorf("notice %q", body)
	}
	e.out.wait(t, "the message after the one given up", onBus(after))
	if e.out.find(onBus(lost)) != nil {
		t.Error("the failing message is on the bus")
	}
	fp.mu.Lock()
	tries := fp.attempts[event.NewEventID(event.NetworkMatrix, event.NativeRoomID(room), event.NativeEventID(lost))]
	fp.mu.Unlock()
	if tries != maxEventAttempts {
		t.Errorf("the failing message was tried %d times, want %d", tries, maxEventAttempts)
	}
	if got := testutil.ToFloat64(e.adapter.metrics.inbound.WithLabelValues("failed")); got != 1 {
		t.Errorf("%v events given up, want 1", got)
	}
	e.out.checkOnceInOrder(t, append(sent, after))

	// In a room where the account may not write, the notice is refused: the event is given up
	// all the same (logged at ERROR), and the room goes on.
	resp, err := alice.Client.Client.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{account},
		PowerLevelOverride: &mevent.PowerLevelsEventContent{EventsDefault: 50, Users: map[id.UserID]int{alice.UserID: 100}}})
	if err != nil {
		t.Fatal(err)
	}
	alice.waitJoined(t, resp.RoomID, account)
	silenced := alice.SendText(t, resp.RoomID, "sieben (Fehler)")
	next := alice.SendText(t, resp.RoomID, "acht")
	e.out.wait(t, "the message after the one given up where the account may not write", onBus(next))
	if e.out.find(onBus(silenced)) != nil {
		t.Error("the failing message is on the bus")
	}
	if got := testutil.ToFloat64(e.adapter.metrics.inbound.WithLabelValues("failed")); got != 2 {
		t.Errorf("%v events given up, want 2", got)
	}
}
