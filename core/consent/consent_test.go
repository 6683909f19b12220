package consent

import (
	"context"
	"errors"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// TestAllows walks the three settings, the organisation default and grants on both stores.
func TestAllows(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		c, err := New(ctx, st, Consent)
		if err != nil {
			t.Fatal(err)
		}
		alice := event.NewUserURI("a.example", "alice")
		colleague := event.NewUserURI("a.example", "carla")
		bob := event.NewUserURI("b.example", "bob")
		eve := event.NewUserURI("e.example", "eve")
		if err := c.Grant(ctx, alice, bob); err != nil {
			t.Fatal(err)
		}
		if err := c.Grant(ctx, alice, bob); err != nil { // idempotent
			t.Fatal(err)
		}
		for _, tc := range []struct {
			setting   Reachability // "" = the default (consent)
			requester event.UserURI
			want      bool
		}{
			{"", bob, true},
			{"", eve, false},
			{"", colleague, true},
			{Consent, bob, true},
			{Consent, eve, false},
			{Partners, eve, true},
			{Nobody, bob, false},
			{Nobody, colleague, true},
		} {
			if err := c.SetReachability(ctx, alice, tc.setting); err != nil {
				t.Fatal(err)
			}
			got, err := c.Allows(ctx, alice, tc.requester)
			if err != nil || got != tc.want {
				t.Errorf("setting %q, requester %s: %v (%v), want %v", tc.setting, tc.requester, got, err, tc.want)
			}
			r, own, err := c.Reachability(ctx, alice)
			if err != nil || own != (tc.setting != "") || (own && r != tc.setting) || (!own && r != Consent) {
				t.Errorf("setting %q read back as %q own=%v (%v)", tc.setting, r, own, err)
			}
		}
		if err := c.Revoke(ctx, alice, bob); err != nil {
			t.Fatal(err)
		}
		if ok, err := c.Allows(ctx, alice, bob); err != nil || ok {
			t.Errorf("after revoke: %v (%v)", ok, err)
		}
		if err := c.SetReachability(ctx, alice, "everyone"); !errors.Is(err, ErrInvalid) {
			t.Errorf("invalid setting: %v", err)
		}
		if _, err := New(ctx, st, "everyone"); !errors.Is(err, ErrInvalid) {
			t.Errorf("invalid default: %v", err)
		}
		// Durable: a new Store on the same database (another default) sees alice's choice.
		if err := c.SetReachability(ctx, alice, Nobody); err != nil {
			t.Fatal(err)
		}
		c2, err := New(ctx, st, Partners)
		if err != nil {
			t.Fatal(err)
		}
		if r, own, err := c2.Reachability(ctx, alice); err != nil || !own || r != Nobody {
			t.Errorf("reopened: %q own=%v (%v)", r, own, err)
		}
	})
}
