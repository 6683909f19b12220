package sendonce

import (
	"context"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/dendritetest"
	"github.com/mimi-gateway/mimi-gateway/core/testwait"
)

// TestVia: on a real Dendrite, an envelope's event is sent marked with its transaction ID (the
// sender's events of the room show it), a second send of the same envelope in this run returns
// the first event and stores nothing new, and a redaction with a reason removes it.
func TestVia(t *testing.T) {
	ctx := t.Context()
	hs := dendritetest.Start(t)
	hs.CreateUser(t, "gw", "gatewaypassword1")
	cli := loginGW(t, hs)
	resp, err := cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	encrypted := 0
	plain := func(_ context.Context, _ id.RoomID, t mevent.Type, c any) (mevent.Type, any, error) {
		encrypted++ // an unencrypted room: the content as it is
		return t, c, nil
	}
	v := &Via{Guard: &Guard{}, S: cli, Client: cli, Room: resp.RoomID, User: cli.UserID, Txn: "mimi.via-1", Created: time.Now(), Encrypt: plain}
	sent, err := v.Send(ctx, mevent.EventMessage, &mevent.MessageEventContent{MsgType: mevent.MsgText, Body: "eins"})
	if err != nil {
		t.Fatal(err)
	}
	if found, err := Find(ctx, cli, resp.RoomID, cli.UserID, "mimi.via-1", nil); err != nil || found != sent {
		t.Fatalf("the sender's events show %q for the transaction ID (%v), sent %s", found, err, sent)
	}
	again, err := v.Send(ctx, mevent.EventMessage, &mevent.MessageEventContent{MsgType: mevent.MsgText, Body: "eins"})
	if err != nil || again != sent {
		t.Fatalf("sent again: %s, %v; want %s", again, err, sent)
	}
	msgs, err := cli.Messages(ctx, resp.RoomID, "", "", mautrix.DirectionBackward, nil, 50)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range msgs.Chunk {
		if e.Type == mevent.EventMessage {
			n++
		}
	}
	if n != 1 || encrypted != 2 {
		t.Fatalf("%d messages in the room, content passed to Encrypt %d times; want 1 and 2", n, encrypted)
	}
	red, err := v.Redact(ctx, sent, "gone", nil)
	if err != nil || red == "" {
		t.Fatalf("redact: %s, %v", red, err)
	}
	// Dendrite applies a redaction after it answered the request: wait for it to show.
	deadline := time.Now().Add(testwait.Scale(10 * time.Second))
	for {
		evt, err := cli.GetEvent(ctx, resp.RoomID, sent)
		if err != nil {
			t.Fatal(err)
		}
		if len(evt.Content.Raw) == 0 && evt.Unsigned.RedactedBecause != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the redaction the event has content %v, redacted_because %v", evt.Content.Raw, evt.Unsigned.RedactedBecause)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
