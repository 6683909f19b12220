package provider

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/abuse"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
)

// TestReportAbuse: Alice (a.example, the hub) and Bob (b.example) share a room. Every message is
// franked by the hub. Bob reports Alice's message: a validates the frank and records the report
// for its admin; Alice reports Bob's message at her own hub the same way. Reports that change the
// content, the accepted time, the frank or the accused are refused (403) and not recorded.
func TestReportAbuse(t *testing.T) {
	a, b := pair(t)
	ctx := context.Background()
	alice, bob, room := invited(t, a, b)
	fromAlice := message(t, room, alice, "you will regret this")
	publishOut(t, a, fromAlice)
	expectText(t, b, fromAlice)
	id := func(env *event.Envelope) []byte {
		mid, err := content.ComputeID(content.DefaultIDVersion, env.Content, string(env.Sender), string(env.Room))
		if err != nil {
			t.Fatal(err)
		}
		return mid[:]
	}
	var ev abuse.Evidence
	waitFor(t, "b keeps alice's message for a report", func() error {
		var err error
		ev, err = abuse.EvidenceOf(ctx, b.st, room, id(fromAlice))
		return err
	})
	if err := b.p.Report(ctx, bob, room, id(fromAlice), "threat"); err != nil {
		t.Fatalf("bob's report: %v", err)
	}
	reports, err := abuse.List(ctx, a.st, 10)
	if err != nil || len(reports) != 1 {
		t.Fatalf("a's reports: %v %v", reports, err)
	}
	r := reports[0]
	if r.Reporter != bob || r.Accused != alice || r.Note != "threat" || len(r.Messages) != 1 || !strings.Contains(r.Messages[0].Text(), "you will regret this") {
		t.Fatalf("recorded report: %+v", r)
	}

	// Forgeries, sent by b.example as a partner would.
	frank, err := decodeFrank(ev.Frank)
	if err != nil {
		t.Fatal(err)
	}
	other := message(t, room, alice, "something alice never wrote")
	forged := []struct {
		name string
		m    protocol.AbusiveMessage
		acc  event.UserURI
	}{
		{"other content", protocol.AbusiveMessage{Content: other.Content, Frank: *frank, AcceptedTimestamp: ev.Accepted}, alice},
		{"other time", protocol.AbusiveMessage{Content: ev.Content, Frank: *frank, AcceptedTimestamp: ev.Accepted + 1}, alice},
		{"other frank", func() protocol.AbusiveMessage {
			f := *frank
			f.ServerFrank[0] ^= 1
			return protocol.AbusiveMessage{Content: ev.Content, Frank: f, AcceptedTimestamp: ev.Accepted}
		}(), alice},
		{"other signature", func() protocol.AbusiveMessage {
			f := *frank
			f.FrankingIntegritySignature = append([]byte(nil), f.FrankingIntegritySignature...)
			f.FrankingIntegritySignature[len(f.FrankingIntegritySignature)-1] ^= 1
			return protocol.AbusiveMessage{Content: ev.Content, Frank: f, AcceptedTimestamp: ev.Accepted}
		}(), alice},
		{"other accused", protocol.AbusiveMessage{Content: ev.Content, Frank: *frank, AcceptedTimestamp: ev.Accepted}, event.NewUserURI("a.example", "anna")},
	}
	for _, f := range forged {
		err := b.tp.Client.ReportAbuse(ctx, room, &protocol.AbuseReport{Reporter: protocol.IdentifierURI(bob), Accused: protocol.IdentifierURI(f.acc),
			Note: f.name, Messages: []protocol.AbusiveMessage{f.m}})
		var he *protocol.HTTPError
		if !errors.As(err, &he) || he.Status != http.StatusForbidden {
			t.Errorf("%s: %v, want 403", f.name, err)
		}
	}
	if reports, err := abuse.List(ctx, a.st, 10); err != nil || len(reports) != 1 {
		t.Fatalf("after the forgeries a has %d reports (%v)", len(reports), err)
	}

	// Alice reports Bob's message at her own hub.
	fromBob := message(t, room, bob, "and you too")
	publishOut(t, b, fromBob)
	expectText(t, a, fromBob)
	waitFor(t, "a keeps bob's message", func() error {
		_, err := abuse.EvidenceOf(ctx, a.st, room, id(fromBob))
		return err
	})
	if err := a.p.Report(ctx, alice, room, id(fromBob), ""); err != nil {
		t.Fatalf("alice's report: %v", err)
	}
	if reports, err := abuse.List(ctx, a.st, 10); err != nil || len(reports) != 2 || reports[0].Accused != bob {
		t.Fatalf("a's reports after alice's: %+v %v", reports, err)
	}
	// A message nobody received cannot be reported.
	if err := b.p.Report(ctx, bob, room, []byte("no such message id 32 bytes long"), ""); !errors.Is(err, ErrNotReportable) {
		t.Fatalf("report of an unknown message: %v", err)
	}
}
