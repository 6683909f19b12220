package sendonce

import (
	"context"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/dendritetest"
)

// TestRestartedSenderFindsItsSend: a gateway killed while sending logs in again (a new access
// token, for which Dendrite's transaction cache is empty); the first envelope of the room from
// before the restart is looked up and not sent again, later ones are sent.
func TestRestartedSenderFindsItsSend(t *testing.T) {
	ctx := t.Context()
	hs := dendritetest.Start(t)
	hs.CreateUser(t, "gw", "gatewaypassword1")
	login := func() *mautrix.Client {
		t.Helper()
		cli, err := mautrix.NewClient(hs.URL, "", "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Login(ctx, &mautrix.ReqLogin{Type: mautrix.AuthTypePassword, StoreCredentials: true, Password: "gatewaypassword1",
			Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "gw"}}); err != nil {
			t.Fatal(err)
		}
		return cli
	}
	first := login()
	resp, err := first.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	room := resp.RoomID
	sends := 0
	sender := func(cli *mautrix.Client, txn, text string) func(context.Context) (id.EventID, error) {
		return func(ctx context.Context) (id.EventID, error) {
			sends++
			r, err := cli.SendMessageEvent(ctx, room, mevent.EventMessage,
				Mark(&mevent.MessageEventContent{MsgType: mevent.MsgText, Body: text}, txn), mautrix.ReqSendEvent{TransactionID: txn})
			if err != nil {
				return "", err
			}
			return r.EventID, nil
		}
	}
	before := processStart.Add(-time.Minute) // an envelope from before this run

	var g1 Guard
	sent, err := g1.Send(ctx, first, room, first.UserID, "mimi.t1", time.Now(), nil, sender(first, "mimi.t1", "eins"))
	if err != nil || sends != 1 {
		t.Fatalf("first send: %s, %v, %d sends", sent, err, sends)
	}

	// The gateway restarts: a new login, a new Guard.
	second := login()
	if dup, err := sender(second, "mimi.t1", "eins")(ctx); err == nil && dup != sent {
		t.Logf("without the guard Dendrite stores the repeated send again for the new access token (%s, first %s)", dup, sent)
		if got, err := Find(ctx, second, room, second.UserID, "mimi.t1", nil); err != nil || got != sent {
			t.Errorf("Find with two copies of the send: %s, %v; want the first, %s", got, err, sent)
		}
		if _, err := second.RedactEvent(ctx, room, dup); err != nil {
			t.Fatal(err)
		}
	}
	sends = 0
	var g2 Guard
	again, err := g2.Send(ctx, second, room, second.UserID, "mimi.t1", before, nil, sender(second, "mimi.t1", "eins"))
	if err != nil || again != sent || sends != 0 {
		t.Errorf("the repeated send after the restart: %s, %v, %d sends; want %s and no send", again, err, sends, sent)
	}
	next, err := g2.Send(ctx, second, room, second.UserID, "mimi.t2", before, nil, sender(second, "mimi.t2", "zwei"))
	if err != nil || next == "" || next == sent || sends != 1 {
		t.Errorf("the room's next envelope: %s, %v, %d sends; want a new event", next, err, sends)
	}
	if got, err := Find(ctx, second, room, second.UserID, "mimi.t3", nil); err != nil || got != "" {
		t.Errorf("Find of a transaction never sent = %q, %v", got, err)
	}
}

// TestSentAgainInThisRun: an envelope handled again after its event was sent (its processed mark
// was not committed) gets the same event, without a second send.
func TestSentAgainInThisRun(t *testing.T) {
	var g Guard
	sends := 0
	send := func(context.Context) (id.EventID, error) { sends++; return "$first", nil }
	for range 2 {
		ev, err := g.Send(t.Context(), nil, "!room:example", "@gw:example", "mimi.t1", time.Now(), nil, send)
		if err != nil || ev != "$first" {
			t.Fatalf("Send = %s, %v", ev, err)
		}
	}
	if sends != 1 {
		t.Errorf("%d sends, want 1", sends)
	}
}
