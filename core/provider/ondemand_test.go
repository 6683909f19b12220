package provider

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// userList is a UserDirectory over a fixed list of users, as an admin-provided list in the
// configuration is; down makes every lookup fail as a homeserver that does not answer would.
type userList struct {
	mu    sync.Mutex
	users map[event.UserURI]event.Network
	down  bool
	asked int
}

var _ UserDirectory = (*userList)(nil)

func (l *userList) LookupUser(_ context.Context, u event.UserURI) (event.Network, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.asked++
	if l.down {
		return "", errors.New("homeserver unreachable")
	}
	if n, ok := l.users[u]; ok {
		return n, nil
	}
	return "", fmt.Errorf("%w: %s", ErrNoSuchUser, u)
}

func (l *userList) setDown(v bool) {
	l.mu.Lock()
	l.down = v
	l.mu.Unlock()
}

func hasUser(t testing.TB, nd *node, u event.UserURI) bool {
	t.Helper()
	_, err := loadUser(context.Background(), nd.st, u)
	if err != nil && !errors.Is(err, ErrUnknownUser) {
		t.Fatal(err)
	}
	return err == nil
}

// TestUsersOnDemand: a partner adds a local user who has never used the gateway. B serves XMPP
// only: the user directory names the network, so the portal request goes to mimi.in.xmpp.
func TestUsersOnDemand(t *testing.T) {
	ctx := context.Background()
	bob := event.NewUserURI("b.example", "bob")
	dir := &userList{users: map[event.UserURI]event.Network{bob: event.NetworkXMPP}}
	a, b := pairConf(t, storetest.SQLiteConfig, nil, func(c *Config) { c.Users, c.UsersOnDemand = dir, true })
	alice := event.NewUserURI(a.domain, "alice")
	if hasUser(t, b, bob) {
		t.Fatal("bob has a client before anyone asked")
	}

	xmpp := make(chan *event.Envelope, 64)
	sub, err := b.bus.ConsumeIn(ctx, "test-xmpp", event.NetworkXMPP, func(_ context.Context, d bus.Delivery) error {
		xmpp <- d.Envelope
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Stop(context.Background()) })

	room := a.p.NewRoomID()
	publishOut(t, a, membership(room, alice, event.MembershipInvite, bob))
	select {
	case pr := <-waitKind(xmpp, event.KindPortalRequest):
		if pr.Room != room || pr.Membership.Target != bob {
			t.Fatalf("portal request for %s in %s, want bob in %s", pr.Membership.Target, pr.Room, room)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no portal request on mimi.in.xmpp")
	}
	u, err := loadUser(ctx, b.st, bob)
	if err != nil || u.Network != event.NetworkXMPP {
		t.Fatalf("bob on b: %+v, %v; want a user served by xmpp", u, err)
	}

	// Messages reach bob's network, and bob's reach alice.
	m1 := message(t, room, alice, "hello Bob, first time here?")
	publishOut(t, a, m1)
	select {
	case got := <-waitKind(xmpp, event.KindMessage):
		if got.Sender != alice || !bytes.Equal(got.Content, m1.Content) {
			t.Fatalf("bob got %s from %s", got.Kind, got.Sender)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("bob got no message on mimi.in.xmpp")
	}
	quiet(t, b, 200*time.Millisecond) // nothing for Matrix: B has no Matrix user in the room
	m2 := message(t, room, bob, "yes")
	publishOut(t, b, m2)
	expectText(t, a, m2)
}

// claimer returns a function that claims a KeyPackage of a user of b for alice on a, directly
// through a's client.
func claimer(t testing.TB, a, b *node) func(event.UserURI) (*protocol.KeyMaterialResponse, error) {
	ctx := context.Background()
	alice := event.NewUserURI(a.domain, "alice")
	if err := a.p.EnsureUser(ctx, alice, event.NetworkMatrix); err != nil {
		t.Fatal(err)
	}
	au, err := loadUser(ctx, a.st, alice)
	if err != nil {
		t.Fatal(err)
	}
	return func(u event.UserURI) (*protocol.KeyMaterialResponse, error) {
		req := &protocol.KeyMaterialRequest{Protocol: protocol.ProtocolMLS10,
			RequestingUser: protocol.IdentifierURI(alice), TargetUser: protocol.IdentifierURI(u),
			AcceptableCipherSuites: []mls.CipherSuite{a.p.cfg.CipherSuite},
			RequesterSignatureKey:  au.Signer.Public, RequesterCredential: credentialOf(alice)}
		if err := req.Sign(au.Signer.Private); err != nil {
			t.Fatal(err)
		}
		return a.tp.Client.KeyMaterial(ctx, b.domain, u, req)
	}
}

// TestUsersOnDemandRefused: a user the directory does not know, and a directory that cannot
// answer.
func TestUsersOnDemandRefused(t *testing.T) {
	carol := event.NewUserURI("b.example", "carol")
	dave := event.NewUserURI("b.example", "dave")
	dir := &userList{users: map[event.UserURI]event.Network{dave: event.NetworkMatrix}}
	a, b := pairConf(t, storetest.SQLiteConfig, nil, func(c *Config) { c.Users, c.UsersOnDemand = dir, true })
	claim := claimer(t, a, b)

	// Unknown on every network: the unknown-user answer (noConsent), nothing created.
	resp, err := claim(carol)
	if err != nil || resp.UserStatus != protocol.KeyMaterialUserNoConsent {
		t.Fatalf("claim for an unknown user: %+v, %v; want noConsent, the answer for unknown users", resp, err)
	}
	if hasUser(t, b, carol) {
		t.Fatal("a client was created for a user nobody knows")
	}

	// The directory does not answer: 503 with Retry-After, nothing created; then it answers.
	dir.setDown(true)
	_, err = claim(dave)
	var he *protocol.HTTPError
	if !errors.As(err, &he) || he.Status != http.StatusServiceUnavailable || he.RetryAfter <= 0 {
		t.Fatalf("claim while the directory is down: %v; want 503 with Retry-After", err)
	}
	if hasUser(t, b, dave) {
		t.Fatal("a client was created without an answer from the directory")
	}
	dir.setDown(false)
	if resp, err = claim(dave); err != nil || resp.UserStatus != protocol.KeyMaterialUserSuccess {
		t.Fatalf("claim for dave: %+v, %v; want success", resp, err)
	}
	if !hasUser(t, b, dave) {
		t.Fatal("dave has no client after a successful claim")
	}

}

// TestUsersOnDemandOff: an organisation that does not allow users on demand: a local user who
// exists but has no client is unknown to partners; one who has a client is served.
func TestUsersOnDemandOff(t *testing.T) {
	ctx := context.Background()
	erin := event.NewUserURI("b.example", "erin")
	dave := event.NewUserURI("b.example", "dave")
	dir := &userList{users: map[event.UserURI]event.Network{erin: event.NetworkMatrix, dave: event.NetworkMatrix}}
	a, b := pairConf(t, storetest.SQLiteConfig, nil, func(c *Config) { c.Users, c.UsersOnDemand = dir, false })
	if err := b.p.EnsureUser(ctx, dave, event.NetworkMatrix); err != nil {
		t.Fatal(err)
	}
	claim := claimer(t, a, b)
	if resp, err := claim(erin); err != nil || resp.UserStatus != protocol.KeyMaterialUserNoConsent {
		t.Fatalf("claim with users on demand off: %+v, %v; want noConsent, the answer for unknown users", resp, err)
	}
	if hasUser(t, b, erin) {
		t.Fatal("a client was created although users on demand are off")
	}
	if resp, err := claim(dave); err != nil || resp.UserStatus != protocol.KeyMaterialUserSuccess {
		t.Fatalf("claim for dave with users on demand off: %+v, %v; want success", resp, err)
	}
}
