package consent

import (
	"context"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// TestList lists settings and grants on both stores.
func TestList(t *testing.T) {
	storetest.Each(t, func(t *testing.T, st *store.Store) {
		ctx := context.Background()
		c, err := New(ctx, st, Consent)
		if err != nil {
			t.Fatal(err)
		}
		alice, bob := event.NewUserURI("a.example", "alice"), event.NewUserURI("b.example", "bob")
		if err := c.SetReachability(ctx, alice, Nobody); err != nil {
			t.Fatal(err)
		}
		if err := c.Grant(ctx, alice, bob); err != nil {
			t.Fatal(err)
		}
		settings, grants, err := List(ctx, st, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(settings) != 1 || settings[0].User != alice || settings[0].Setting != Nobody || settings[0].Updated.IsZero() {
			t.Errorf("settings %+v", settings)
		}
		if len(grants) != 1 || grants[0].Target != alice || grants[0].Requester != bob {
			t.Errorf("grants %+v", grants)
		}
	})
}
