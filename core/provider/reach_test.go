package provider

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/consent"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// TestEnumerationUniformAnswers: with the organisation default "consent", a claim by bob
// (b.example) for a user who does not exist, for a user who has not accepted bob, and for a
// user who reaches nobody outside get byte-identical answers; the user who accepted bob gets a
// KeyPackage. With the default "partners" an existing user is claimable and an unknown one still
// gets the same bytes as before.
func TestEnumerationUniformAnswers(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		for _, def := range []consent.Reachability{consent.Consent, consent.Partners} {
			c, err := consent.New(ctx, s, def)
			if err != nil {
				t.Fatal(err)
			}
			p, err := New(ctx, Config{Domain: "a.example", Store: s, Bus: noBus{}, PoolSize: 2, Reach: c})
			if err != nil {
				t.Fatal(err)
			}
			bob := event.NewUserURI("b.example", "bob")
			alice, carla, dora := event.NewUserURI("a.example", "alice"), event.NewUserURI("a.example", "carla"), event.NewUserURI("a.example", "dora")
			for _, u := range []event.UserURI{alice, carla, dora} {
				if err := p.EnsureUser(ctx, u, event.NetworkMatrix); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.Grant(ctx, carla, bob); err != nil {
				t.Fatal(err)
			}
			if err := c.SetReachability(ctx, dora, consent.Nobody); err != nil {
				t.Fatal(err)
			}
			claim := func(target event.UserURI) *protocol.KeyMaterialResponse {
				t.Helper()
				req := &protocol.KeyMaterialRequest{Protocol: protocol.ProtocolMLS10, RequestingUser: protocol.IdentifierURI(bob),
					TargetUser: protocol.IdentifierURI(target), RequesterCredential: credentialOf(bob),
					AcceptableCipherSuites: []mls.CipherSuite{p.cfg.CipherSuite}}
				resp, err := p.KeyMaterial(ctx, protocol.Peer{Domain: "b.example"}, target, req)
				if err != nil {
					t.Fatal(err)
				}
				return resp
			}
			encoded := func(target event.UserURI) []byte {
				t.Helper()
				b, err := claim(target).Encode()
				if err != nil {
					t.Fatal(err)
				}
				return b
			}
			// The answers name the target; compare them for one target name: a user who
			// does not exist is the same name before EnsureUser.
			ghost := event.NewUserURI("a.example", "ghost")
			unknown := encoded(ghost)
			if def == consent.Consent {
				if err := p.EnsureUser(ctx, ghost, event.NetworkMatrix); err != nil { // ghost now exists, no consent
					t.Fatal(err)
				}
				if got := encoded(ghost); !bytes.Equal(got, unknown) {
					t.Fatalf("default consent: existing user without consent %x, unknown user %x", got, unknown)
				}
			}
			if err := c.SetReachability(ctx, ghost, consent.Nobody); err != nil {
				t.Fatal(err)
			}
			if err := p.EnsureUser(ctx, ghost, event.NetworkMatrix); err != nil {
				t.Fatal(err)
			}
			if got := encoded(ghost); !bytes.Equal(got, unknown) {
				t.Fatalf("default %s: user who reaches nobody %x, unknown user %x", def, got, unknown)
			}
			if r := claim(carla); r.UserStatus != protocol.KeyMaterialUserSuccess || len(r.Clients) != 1 || r.Clients[0].KeyPackage == nil {
				t.Fatalf("default %s: user who accepted bob: %+v", def, r)
			}
			want := protocol.KeyMaterialUserNoConsent
			if def == consent.Partners {
				want = protocol.KeyMaterialUserSuccess
			}
			if r := claim(alice); r.UserStatus != want {
				t.Fatalf("default %s: alice (no setting, no grant): status %d, want %d", def, r.UserStatus, want)
			}
			if r := claim(dora); r.UserStatus != protocol.KeyMaterialUserNoConsent || len(r.Clients) != 0 {
				t.Fatalf("default %s: dora (nobody): %+v", def, r)
			}
			// Clean up for the next default: settings and grants are durable.
			for _, u := range []event.UserURI{carla, dora, ghost} {
				if err := c.SetReachability(ctx, u, ""); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.Revoke(ctx, carla, bob); err != nil {
				t.Fatal(err)
			}
			if _, err := s.ExecContext(ctx, `DELETE FROM provider_keypackages`); err != nil {
				t.Fatal(err)
			}
			if _, err := s.ExecContext(ctx, `DELETE FROM provider_users`); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestKeyMaterialRequester: on the direct path the requester must be a user of the calling
// provider (or, for a claim the caller relays as the hub of the claim's room, of a third
// provider), never one of ours, with a basic credential naming it; else 403, before the target
// is looked at.
func TestKeyMaterialRequester(t *testing.T) {
	s := storetest.Open(t, storetest.SQLiteConfig(t))
	ctx := context.Background()
	p := storeOnly(t, s, time.Now)
	alice := event.NewUserURI("a.example", "alice")
	if err := p.EnsureUser(ctx, alice, event.NetworkMatrix); err != nil {
		t.Fatal(err)
	}
	bob, carol, ann := event.NewUserURI("b.example", "bob"), event.NewUserURI("c.example", "carol"), event.NewUserURI("a.example", "ann")
	for _, tc := range []struct {
		name      string
		requester event.UserURI
		cred      mls.Credential
		room      event.RoomURI
		ok        bool
	}{
		{"the caller's user", bob, credentialOf(bob), "", true},
		{"a third provider's user", carol, credentialOf(carol), "", false},
		{"a third provider's user in a room of ours", carol, credentialOf(carol), event.NewRoomURI("a.example", "r"), false},
		{"a third provider's user relayed by the room's hub", carol, credentialOf(carol), event.NewRoomURI("b.example", "r"), true},
		{"one of our users, relayed", ann, credentialOf(ann), event.NewRoomURI("b.example", "r"), false},
		{"a credential of someone else", bob, credentialOf(carol), "", false},
		{"no requester", "", credentialOf(bob), "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := &protocol.KeyMaterialRequest{Protocol: protocol.ProtocolMLS10, RequestingUser: protocol.IdentifierURI(tc.requester),
				TargetUser: protocol.IdentifierURI(alice), RoomID: protocol.IdentifierURI(tc.room), RequesterCredential: tc.cred,
				AcceptableCipherSuites: []mls.CipherSuite{p.cfg.CipherSuite}}
			resp, err := p.KeyMaterial(ctx, protocol.Peer{Domain: "b.example"}, alice, req)
			var se *protocol.StatusError
			switch {
			case tc.ok && (err != nil || resp.UserStatus != protocol.KeyMaterialUserSuccess):
				t.Fatalf("refused: %+v, %v", resp, err)
			case !tc.ok && (!errors.As(err, &se) || se.Status != http.StatusForbidden):
				t.Fatalf("got %+v, %v; want 403", resp, err)
			}
		})
	}
}
