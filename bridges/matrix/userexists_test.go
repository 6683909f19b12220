package matrix

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// TestUserExists: the appservice bot and a client-mode functional account on the same Dendrite
// tell local users from names nobody has, from the adapter's own users and from other domains;
// a homeserver that does not answer is an error, not a "no".
func TestUserExists(t *testing.T) {
	e := startAppserviceEnv(t)
	e.hs.CreateUser(t, "alice", "alicepassword123")
	e.hs.CreateUser(t, "mimigw", "functionalpassword1")

	dir := t.TempDir()
	cc := Config{
		Mode: ModeClient, HomeserverURL: e.hs.URL, ServerName: "localhost", GatewayDomain: "localhost",
		Client:      ClientConfig{UserID: "@mimigw:localhost", Password: "functionalpassword1"},
		Encryption:  EncryptionConfig{PickleKey: testPickleKey},
		DecryptWait: 3 * time.Second,
	}
	ca, err := New(t.Context(), cc, bridges.Deps{Store: openStore(t, dir), Bus: openBus(t, dir), Assets: newAssetsAt(t, filepath.Join(dir, "c")), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = ca.Stop(c)
	})

	tests := []struct {
		name string
		u    event.UserURI
		want bool
	}{
		{"registered user", "mimi://localhost/u/alice", true},
		{"nobody has the name", "mimi://localhost/u/nobody", false},
		{"another domain", "mimi://amt-b.example/u/alice", false},
		{"ghost", "mimi://localhost/u/mimi_amt-b.example_bob", false},
		{"not a Matrix localpart", "mimi://localhost/u/al%20ice", false},
	}
	for _, a := range []*Adapter{e.adapter, ca} {
		for _, tc := range tests {
			got, err := a.UserExists(t.Context(), tc.u)
			if err != nil || got != tc.want {
				t.Errorf("%s mode, %s: UserExists(%s) = %v, %v; want %v", a.cfg.Mode, tc.name, tc.u, got, err, tc.want)
			}
		}
	}
	// Each adapter's own account is not a user; the other one's is (in client mode the
	// appservice bot is just another account of the homeserver).
	for _, tc := range []struct {
		a    *Adapter
		u    event.UserURI
		want bool
	}{
		{e.adapter, "mimi://localhost/u/mimibot", false},
		{e.adapter, "mimi://localhost/u/mimigw", true},
		{ca, "mimi://localhost/u/mimigw", false},
		{ca, "mimi://localhost/u/mimibot", true},
	} {
		if got, err := tc.a.UserExists(t.Context(), tc.u); err != nil || got != tc.want {
			t.Errorf("%s mode: UserExists(%s) = %v, %v; want %v", tc.a.cfg.Mode, tc.u, got, err, tc.want)
		}
	}

	e.hs.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if got, err := e.adapter.UserExists(ctx, "mimi://localhost/u/alice"); err == nil {
		t.Errorf("homeserver down: UserExists = %v, nil; want an error", got)
	}
}
