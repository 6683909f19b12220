package hostile

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway/internal/gatewaytest"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
)

func randomRoom(d event.Domain) event.RoomURI {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return event.NewRoomURI(d, hex.EncodeToString(b[:]))
}

// TestImpersonationAtHub: alice (hub.example) has a room with bob (good.example); a commit of
// evil.example for it gets notAllowed without the room's epoch until eve (evil.example, a
// regular member) is invited. eve commits Adds of KeyPackages she made whose credentials
// name alice and bob, without a Welcome, and submits a message with sendingUri alice: the hub
// refuses all three (notAllowed), counts and logs them with evil's domain. eve's own message is
// delivered to bob as eve's, and good.example never delivers anything as alice's.
func TestImpersonationAtHub(t *testing.T) {
	w := newWorld(t, map[string]string{"hub.example": "", "good.example": ""})
	hub, good, ev := w.gws["hub.example"], w.gws["good.example"], w.evil
	alice, bob := event.NewUserURI("hub.example", "alice"), event.NewUserURI("good.example", "bob")
	good.appear(t, bob)
	room := randomRoom("hub.example")
	invite := func(target event.UserURI) {
		hub.publishOut(t, &event.Envelope{Kind: event.KindMembership, Room: room, Sender: alice,
			Membership: &event.Membership{Action: event.MembershipInvite, Target: target}})
	}
	invite(bob)
	good.expect(t, "bob's portal request", func(e *event.Envelope) bool { return e.Kind == event.KindPortalRequest && e.Room == room })
	ctx := context.Background()
	// Before eve is in the room, evil.example learns nothing of it: a commit for it and for a
	// room that does not exist both get notAllowed, without the room's epoch.
	for _, r := range []event.RoomURI{room, randomRoom("hub.example")} {
		og, err := mls.CreateGroup([]byte("mimi://hub.example/g/"+r.Local()), ev.signer, credential(ev.eve), mls.GroupOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := commit(t, og, mls.CommitOptions{})
		resp, err := ev.Client.Update(ctx, r, &protocol.UpdateRequest{Bundle: b})
		if err != nil || resp.ResponseCode != protocol.UpdateNotAllowed || resp.CurrentEpoch != 0 {
			t.Fatalf("commit of a non-member for %s: %+v, %v; want notAllowed without an epoch", r, resp, err)
		}
	}
	invite(ev.eve)
	g := ev.joinFromWelcome(t, room)

	for _, victim := range []event.UserURI{alice, bob} {
		b, _ := commit(t, g, mls.CommitOptions{Add: []*mls.KeyPackage{forged(t, victim)}})
		resp, err := ev.Client.Update(ctx, room, &protocol.UpdateRequest{Bundle: b})
		if err != nil {
			t.Fatal(err)
		}
		if resp.ResponseCode != protocol.UpdateNotAllowed || !strings.Contains(resp.ErrorDescription, "credential") {
			t.Fatalf("forged Add of %s: code %d %q, want notAllowed", victim, resp.ResponseCode, resp.ErrorDescription)
		}
	}
	if n := hub.metric(t, `mimi_gateway_provider_refusals_total{endpoint="update",reason="credential_own_key"}`); n != 1 {
		t.Errorf("hub counted %v refusals of alice's forged leaf", n)
	}
	if n := hub.metric(t, `mimi_gateway_provider_refusals_total{endpoint="update",reason="credential_unvouched"}`); n != 1 {
		t.Errorf("hub counted %v refusals of bob's forged leaf", n)
	}
	hub.WaitLog(t, time.Minute, "refused a handshake with a leaf its provider did not vouch for")
	if !strings.Contains(hub.Log(), "peer=evil.example") {
		t.Error("the hub's log does not name evil.example")
	}

	send := func(as event.UserURI, text_ string) *protocol.SubmitMessageResponse {
		t.Helper()
		m, err := g.Encrypt(text(t, ev.eve, room, text_, true), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := ev.Client.SubmitMessage(ctx, room, &protocol.SubmitMessageRequest{Protocol: protocol.ProtocolMLS10, AppMessage: m, SendingURI: protocol.IdentifierURI(as)})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if r := send(alice, "I am alice"); r.StatusCode != protocol.SubmitNotAllowed {
		t.Fatalf("message with sendingUri alice: status %d, want notAllowed", r.StatusCode)
	}
	if r := send(ev.eve, "hello from eve"); r.StatusCode != protocol.SubmitAccepted {
		t.Fatalf("eve's own message: status %d", r.StatusCode)
	}
	got := good.expect(t, "a message for bob", func(e *event.Envelope) bool { return e.Kind == event.KindMessage && e.Room == room })
	if got.Sender != ev.eve {
		t.Fatalf("bob got a message from %s, want eve's", got.Sender)
	}
}

// TestImpersonationAtFollower bypasses any honest hub: evil.example hosts a room with bob of
// good.example and sends good.example, as that room's hub, a commit adding a second leaf for bob
// with a key eve made, then a message from eve's leaf whose content names alice of hub.example as
// its sender, then eve's plain message. good.example applies none of the forged commit (alert on
// /metrics and in the admin view's table, WARN with the hub's domain), discards the message that names alice, and delivers
// eve's as eve's.
func TestImpersonationAtFollower(t *testing.T) {
	w := newWorld(t, map[string]string{"good.example": ""})
	good, ev := w.gws["good.example"], w.evil
	bob := event.NewUserURI("good.example", "bob")
	good.appear(t, bob)
	ctx := context.Background()
	room := randomRoom(ev.domain)
	kr, err := ev.Client.KeyMaterial(ctx, "good.example", bob, ev.claimRequest(t, ev.eve, bob, room))
	if err != nil || kr.UserStatus != protocol.KeyMaterialUserSuccess {
		t.Fatalf("claim bob: %+v, %v", kr, err)
	}
	g, err := mls.CreateGroup([]byte("mimi://evil.example/g/"+room.Local()), ev.signer, credential(ev.eve), mls.GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, pc := commit(t, g, mls.CommitOptions{Add: []*mls.KeyPackage{kr.Clients[0].KeyPackage}})
	if g, err = pc.Confirm(); err != nil { // evil is this room's hub: it accepts its own commit
		t.Fatal(err)
	}
	seq := uint64(time.Now().UnixMilli())
	notify := func(fs ...*protocol.FanoutMessage) {
		t.Helper()
		for _, f := range fs {
			seq++
			f.Timestamp = seq
		}
		body, err := protocol.EncodeFanoutMessages(fs)
		if err != nil {
			t.Fatal(err)
		}
		if err := ev.Client.Notify(ctx, "good.example", room, body); err != nil {
			t.Fatal(err)
		}
	}
	notify(&protocol.FanoutMessage{Message: pc.Welcome, RatchetTreeOption: &protocol.RatchetTreeOption{
		Representation: protocol.RatchetTreeFull, RatchetTree: g.RatchetTree()}})
	good.expect(t, "bob's portal request", func(e *event.Envelope) bool { return e.Kind == event.KindPortalRequest && e.Room == room })

	_, forgedCommit := commit(t, g, mls.CommitOptions{Add: []*mls.KeyPackage{forged(t, bob)}})
	notify(&protocol.FanoutMessage{Message: forgedCommit.Commit})
	gatewaytest.Eventually(t, time.Minute, "good.example's credential alert", func() error {
		if n := good.metric(t, "mimi_gateway_provider_credential_alerts_total"); n != 1 {
			return fmt.Errorf("%v alerts", n)
		}
		return nil
	})
	good.WaitLog(t, time.Minute, "refused fanout: a leaf claims one of our users with a key we did not create")
	if !strings.Contains(good.Log(), "hub=evil.example") {
		t.Error("good.example's log does not name the hub")
	}
	// The admin view (console section credential-alerts) lists the table's rows; the row is
	// committed with the refusal, just after the metric is counted.
	gatewaytest.Eventually(t, time.Minute, "good.example's credential alert row", func() error {
		if n := good.count(t, `SELECT COUNT(*) FROM provider_credential_alerts WHERE room = ? AND hub = ? AND user_uri = ?`, string(room), "evil.example", string(bob)); n != 1 {
			return fmt.Errorf("%d credential alerts for bob from evil.example recorded, want 1", n)
		}
		return nil
	})

	alice := event.NewUserURI("hub.example", "alice")
	for _, m := range []struct {
		sender event.UserURI
		text   string
	}{{alice, "I am alice"}, {ev.eve, "hello from eve"}} {
		enc, err := g.Encrypt(text(t, m.sender, room, m.text, false), nil)
		if err != nil {
			t.Fatal(err)
		}
		notify(&protocol.FanoutMessage{Message: enc})
	}
	got := good.expect(t, "a message for bob", func(e *event.Envelope) bool { return e.Kind == event.KindMessage && e.Room == room })
	if got.Sender != ev.eve {
		t.Fatalf("bob got a message from %s, want eve's", got.Sender)
	}
	if n := good.metric(t, `mimi_gateway_provider_refusals_total{endpoint="notify",reason="sender_mismatch"}`); n != 1 {
		t.Errorf("sender mismatches counted: %v", n)
	}
}
