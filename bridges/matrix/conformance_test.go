package matrix

import (
	"testing"

	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges/bridgetest"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// TestConformance runs the shared adapter tests (bridges/bridgetest) against the appservice
// adapter on Dendrite: alice writes in an encrypted portal with bob's ghost.
func TestConformance(t *testing.T) {
	e := startAppserviceEnv(t)
	alice := newE2EEClient(t, e.hs, "alice", "alicepassword123")
	ghost := e.adapter.ghosts.UserID(bobURI)
	room := alice.createEncryptedRoom(t, ghost)
	roomURI, err := RoomURIOf("localhost", room)
	if err != nil {
		t.Fatal(err)
	}
	e.out.wait(t, "invite envelope", func(env *event.Envelope) bool { return env.Kind == event.KindMembership && env.Room == roomURI })
	alice.waitJoined(t, room, ghost)
	alice.waitJoined(t, room, e.adapter.botUserID())
	bridgetest.Conformance(t, bridgetest.Fixture{
		Room: roomURI, Local: "mimi://localhost/u/alice", Remote: bobURI,
		In: func(t testing.TB, env *event.Envelope) {
			if err := e.bus.PublishIn(t.Context(), event.NetworkMatrix, env); err != nil {
				t.Fatal(err)
			}
		},
		Out: func(t testing.TB, native string) *event.Envelope {
			return e.out.wait(t, "envelope of "+native, func(env *event.Envelope) bool { return string(env.Origin.Event) == native })
		},
		Native: &matrixUser{c: alice, room: room, ghost: ghost},
	})
}

// matrixUser is alice's E2EE client in the portal.
type matrixUser struct {
	c     *e2eeClient
	room  id.RoomID
	ghost id.UserID
}

func (u *matrixUser) Send(t testing.TB, text, replyTo string) string {
	c := &mevent.MessageEventContent{MsgType: mevent.MsgText, Body: text}
	if replyTo != "" {
		c.RelatesTo = &mevent.RelatesTo{InReplyTo: &mevent.InReplyTo{EventID: id.EventID(replyTo)}}
	}
	return string(u.c.send(t, u.room, c))
}

func (u *matrixUser) Edit(t testing.TB, target, text string) string {
	c := &mevent.MessageEventContent{MsgType: mevent.MsgText, Body: text}
	c.SetEdit(id.EventID(target))
	return string(u.c.send(t, u.room, c))
}

func (u *matrixUser) React(t testing.TB, target, key string) string {
	return string(u.c.sendType(t, u.room, mevent.EventReaction, &mevent.ReactionEventContent{RelatesTo: mevent.RelatesTo{
		Type: mevent.RelAnnotation, EventID: id.EventID(target), Key: key}}))
}

func (u *matrixUser) Delete(t testing.TB, target string) string {
	resp, err := u.c.RedactEvent(t.Context(), u.room, id.EventID(target))
	if err != nil {
		t.Fatal(err)
	}
	return string(resp.EventID)
}

func (u *matrixUser) Expect(t testing.TB, want bridgetest.Seen) string {
	ev := u.c.waitEvent(t, want.String(), func(ev *mevent.Event) bool {
		if ev.Sender != u.ghost || ev.RoomID != u.room {
			return false
		}
		switch want.Kind {
		case event.KindMessage, event.KindEdit:
			if ev.Type != mevent.EventMessage {
				return false
			}
			c := ev.Content.AsMessage()
			if want.Kind == event.KindEdit {
				return c.RelatesTo != nil && c.RelatesTo.Type == mevent.RelReplace && string(c.RelatesTo.EventID) == want.Target &&
					c.NewContent != nil && c.NewContent.Body == want.Text
			}
			replyTo := ""
			if c.RelatesTo != nil && c.RelatesTo.InReplyTo != nil {
				replyTo = string(c.RelatesTo.InReplyTo.EventID)
			}
			return c.Body == want.Text && replyTo == want.Target && (c.RelatesTo == nil || c.RelatesTo.Type != mevent.RelReplace)
		case event.KindReaction:
			r := ev.Content.AsReaction()
			return ev.Type == mevent.EventReaction && r.RelatesTo.Key == want.Text && string(r.RelatesTo.EventID) == want.Target
		case event.KindDelete:
			return ev.Type == mevent.EventRedaction && string(ev.Redacts) == want.Target
		}
		return false
	})
	return string(ev.ID)
}
