package provider

import (
	"bytes"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// TestTwoProvidersKinds sends an edit, a reaction, an unreact, a read report and a delete from
// Alice (A, the hub) and checks each arrives on B's mimi.in under its kind, with its content,
// its own message ID and the target the adapters look up.
func TestTwoProvidersKinds(t *testing.T) {
	a, b := pair(t)
	alice, _, room := invited(t, a, b)

	orig := message(t, room, alice, "original")
	publishOut(t, a, orig)
	expectText(t, b, orig)
	origID := idOf(t, orig)

	cb := content.Builder{SenderURI: string(alice), RoomURI: string(room)}
	edit, err := cb.Edit(origID, content.PlainText("edited"))
	if err != nil {
		t.Fatal(err)
	}
	react, err := cb.Reaction(origID, "👍")
	if err != nil {
		t.Fatal(err)
	}
	reactEnv := envelopeOf(t, event.KindReaction, room, alice, react)
	unreact, err := cb.Unreact(idOf(t, reactEnv), origID)
	if err != nil {
		t.Fatal(err)
	}
	read, err := cb.Status(content.StatusReport{{MessageID: origID, Status: content.StatusRead}})
	if err != nil {
		t.Fatal(err)
	}
	del, err := cb.Delete(origID)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		env    *event.Envelope
		target func(*content.Message) *content.MessageID
	}{
		{envelopeOf(t, event.KindEdit, room, alice, edit), func(m *content.Message) *content.MessageID { return m.Replaces }},
		{reactEnv, func(m *content.Message) *content.MessageID { return m.InReplyTo }},
		{envelopeOf(t, event.KindReaction, room, alice, unreact), func(m *content.Message) *content.MessageID { return m.InReplyTo }},
		{envelopeOf(t, event.KindReceipt, room, alice, read), func(m *content.Message) *content.MessageID {
			rep, _, _ := m.StatusReport()
			return &rep[0].MessageID
		}},
		{envelopeOf(t, event.KindDelete, room, alice, del), func(m *content.Message) *content.MessageID { return m.Replaces }},
	} {
		publishOut(t, a, c.env)
		got := expect(t, b, c.env.Kind.String(), func(e *event.Envelope) bool { return e.Kind != event.KindPortalRequest })
		if got.Kind != c.env.Kind || got.Sender != alice || got.Room != room || !bytes.Equal(got.Content, c.env.Content) {
			t.Fatalf("sent %s, B got %s from %s in %s (same content: %v)", c.env.Kind, got.Kind, got.Sender, got.Room, bytes.Equal(got.Content, c.env.Content))
		}
		if id := idOf(t, c.env); !bytes.Equal(got.MessageID, id[:]) {
			t.Fatalf("%s: message ID %x, want %x", got.Kind, got.MessageID, id)
		}
		m, err := content.Decode(got.Content)
		if err != nil {
			t.Fatal(err)
		}
		if tg := c.target(m); tg == nil || *tg != origID {
			t.Fatalf("%s: target %v, want the original %x", got.Kind, tg, origID)
		}
	}
}

func envelopeOf(t testing.TB, k event.Kind, room event.RoomURI, sender event.UserURI, m *content.Message) *event.Envelope {
	t.Helper()
	raw, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return &event.Envelope{Kind: k, Room: room, Sender: sender, Content: raw}
}

func idOf(t testing.TB, env *event.Envelope) content.MessageID {
	t.Helper()
	id, err := content.ComputeID(content.DefaultIDVersion, env.Content, string(env.Sender), string(env.Room))
	if err != nil {
		t.Fatal(err)
	}
	return id
}
