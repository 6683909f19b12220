package matrix

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// TestAppserviceRequireEncryption: with encryption.require a message of an unencrypted room is
// not sent to MIMI, and a MIMI message for an unencrypted portal is not posted (it becomes a dead
// letter); membership still passes, so the room itself is known.
func TestAppserviceRequireEncryption(t *testing.T) {
	e := startAppserviceEnv(t, func(c *Config) { c.Encryption.Require = true })
	ctx := t.Context()
	alice := newE2EEClient(t, e.hs, "alice", "alicepassword123")
	ghost := e.adapter.ghosts.UserID(bobURI)
	room := alice.CreateRoom(t, "", false, false, ghost)
	roomURI, err := RoomURIOf("localhost", room)
	if err != nil {
		t.Fatal(err)
	}
	e.out.wait(t, "invite envelope", func(env *event.Envelope) bool {
		return env.Kind == event.KindMembership && env.Room == roomURI
	})
	alice.waitJoined(t, room, ghost)

	clear := alice.SendText(t, room, "Befund in the clear")
	unencrypted := e.adapter.metrics.inbound.WithLabelValues("unencrypted")
	waitFor(t, 30*time.Second, "the unencrypted message to be refused", func() bool { return testutil.ToFloat64(unencrypted) == 1 })
	if n := e.out.count(event.NewEventID(event.NetworkMatrix, event.NativeRoomID(room), event.NativeEventID(clear))); n != 0 {
		t.Fatalf("the unencrypted message was published %d times", n)
	}

	in := mimiMessage(t, event.KindMessage, roomURI, bobURI, 1, func(m *content.Message) {
		m.Body = textBody(content.TypePlain, "reply that must not be posted in the clear")
	})
	if err := e.bus.PublishIn(ctx, event.NetworkMatrix, in); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the MIMI message to be dead-lettered", func() bool {
		n, err := e.bus.DeadLetterCount(ctx)
		return err == nil && n == 1
	})
}
