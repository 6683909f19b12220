package matrix

import (
	"testing"

	"maunium.net/go/mautrix/crypto/cryptohelper"
	mevent "maunium.net/go/mautrix/event"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// TestAppserviceRestartReceivesNewRoomKeys: after the gateway restarts (same store, same bot
// device), a Matrix user's new Megolm session still reaches the gateway's device. The room key
// is a to-device message for that device; a sync with the appservice's own token acts as no
// device (Dendrite's "AS_Device") and never receives it, so the gateway would read none of the
// user's messages after her next session rotation.
func TestAppserviceRestartReceivesNewRoomKeys(t *testing.T) {
	e := startAppserviceEnv(t)
	ctx := t.Context()
	alice := newE2EEClient(t, e.hs, "alice", "alicepassword123")
	ghost := e.adapter.ghosts.UserID(bobURI)
	room := alice.createEncryptedRoom(t, ghost)
	alice.waitJoined(t, room, e.adapter.botUserID())
	roomURI, _ := RoomURIOf("localhost", room)
	waitPortal(t, e, roomURI)
	said := func(text string) {
		t.Helper()
		id := alice.send(t, room, &mevent.MessageEventContent{MsgType: mevent.MsgText, Body: text})
		env := e.out.wait(t, text, func(env *event.Envelope) bool { return env.Origin.Event == event.NativeEventID(id) })
		if _, plain, _, _ := decodeText(t, env.Content); plain != text {
			t.Fatalf("%q reached MIMI as %q", text, plain)
		}
	}
	said("vor dem Neustart")
	device := e.adapter.client.DeviceID

	e.stopAdapter(t)
	e.startAdapter(t)
	if got := e.adapter.client.DeviceID; got != device {
		t.Fatalf("the gateway's device changed from %s to %s over the restart", device, got)
	}
	said("nach dem Neustart, alter Schlüssel")
	// Alice's client starts a new session (as it does after 100 messages or a week): its key
	// goes to the gateway's device as a to-device message.
	helper, ok := alice.Crypto.(*cryptohelper.CryptoHelper)
	if !ok {
		t.Fatalf("alice's crypto is %T", alice.Crypto)
	}
	if err := helper.Machine().CryptoStore.RemoveOutboundGroupSession(ctx, room); err != nil {
		t.Fatal(err)
	}
	said("nach dem Neustart, neuer Schlüssel")
}
