package e2ee

import (
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/sqlstatestore"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/dendritetest"
)

// TestOutgoing: on a real Dendrite with a real device, content for an unencrypted room is sent
// as it is, content for an encrypted room is an m.room.encrypted payload that the device reads
// back, and an encrypted room without a device is an error; only encryptions are counted.
func TestOutgoing(t *testing.T) {
	ctx := t.Context()
	hs := dendritetest.Start(t)
	hs.CreateUser(t, "gw", "gatewaypassword1")
	db := dendritetest.OpenDB(t)
	states := sqlstatestore.NewSQLStateStore(db, dbutil.NoopLogger, false)
	if err := states.Upgrade(ctx); err != nil {
		t.Fatal(err)
	}
	cli, err := mautrix.NewClient(hs.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	cli.StateStore = states
	dev, err := NewDevice(ctx, cli, db, []byte("pickle key of the test"), &mautrix.ReqLogin{Type: mautrix.AuthTypePassword,
		Password: "gatewaypassword1", Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "gw"}}, mautrix.NewDefaultSyncer())
	if err != nil {
		t.Fatal(err)
	}
	plainRoom, err := cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	encRoom, err := cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", InitialState: []*mevent.Event{
		{Type: mevent.StateEncryption, Content: mevent.Content{Parsed: &mevent.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := states.SetEncryptionEvent(ctx, encRoom.RoomID, &mevent.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}); err != nil {
		t.Fatal(err)
	}
	m := NewMetrics()
	out := Outgoing{Rooms: states, Device: dev, Metrics: m, Log: slog.New(slog.DiscardHandler)}
	msg := &mevent.MessageEventContent{MsgType: mevent.MsgText, Body: "geheim"}

	typ, c, err := out.Encrypt(ctx, plainRoom.RoomID, mevent.EventMessage, msg)
	if err != nil || typ != mevent.EventMessage || c != msg {
		t.Fatalf("unencrypted room: %s, %v, %v; want the message as it is", typ.Type, c, err)
	}
	typ, c, err = out.Encrypt(ctx, encRoom.RoomID, mevent.EventMessage, msg)
	enc, ok := c.(*mevent.EncryptedEventContent)
	if err != nil || typ != mevent.EventEncrypted || !ok {
		t.Fatalf("encrypted room: %s, %T, %v; want an m.room.encrypted payload", typ.Type, c, err)
	}
	evt := &mevent.Event{Type: mevent.EventEncrypted, RoomID: encRoom.RoomID, Sender: cli.UserID, ID: "$local",
		Content: mevent.Content{Parsed: enc}}
	dec, err := dev.Decrypt(ctx, evt)
	if err != nil {
		t.Fatalf("the device cannot read its own payload: %v", err)
	}
	if body := dec.Content.AsMessage().Body; body != "geheim" {
		t.Fatalf("decrypted body %q", body)
	}
	out.Device = nil
	if _, _, err := out.Encrypt(ctx, encRoom.RoomID, mevent.EventMessage, msg); err == nil {
		t.Fatal("an encrypted room without a device: no error")
	}
	if n := testutil.ToFloat64(m.KeyShare.WithLabelValues("ok")); n != 1 {
		t.Fatalf("%v encryptions counted, want 1", n)
	}
}
