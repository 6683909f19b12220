package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// trio starts three providers that are partners of each other: a (the hub of the rooms the
// tests create), b and c.
func trio(t testing.TB) (*node, *node, *node) {
	t.Helper()
	return trioConf(t, nil)
}

// trioConf is trio with confA (if set) adjusting a's configuration.
func trioConf(t testing.TB, confA func(*Config)) (*node, *node, *node) {
	t.Helper()
	n := protocoltest.NewNetwork()
	ca := protocoltest.NewCA(t)
	nodes := []*node{
		newNodeConf(t, n, ca, "a.example", storetest.SQLiteConfig(t), confA),
		newNode(t, n, ca, "b.example", storetest.SQLiteConfig(t)),
		newNode(t, n, ca, "c.example", storetest.SQLiteConfig(t)),
	}
	for _, x := range nodes {
		var ps []protocol.Partner
		for _, y := range nodes {
			if y != x {
				ps = append(ps, y.tp.PartnerEntry(false))
			}
		}
		x.tp.Partners.Set(ps)
	}
	for _, x := range nodes {
		x.start(t)
	}
	return nodes[0], nodes[1], nodes[2]
}

// TestThreeProviders: Bob (a follower, B) adds Carol (a user of a third provider, C) to Alice's
// room on A. B claims Carol's KeyPackage at the hub, which relays the claim to C and records
// KeyPackageRef → c.example; the hub routes the Welcome of B's commit to C only; Carol gets her
// portal request and messages flow between all three.
func TestThreeProviders(t *testing.T) {
	ctx := context.Background()
	a, b, c := trio(t)
	alice, bob, room := invited(t, a, b)
	carol := event.NewUserURI(c.domain, "carol")
	if err := c.p.EnsureUser(ctx, carol, event.NetworkMatrix); err != nil {
		t.Fatal(err)
	}

	publishOut(t, b, membership(room, bob, event.MembershipInvite, carol))
	pr := expect(t, c, "carol's portal request", func(e *event.Envelope) bool { return e.Kind == event.KindPortalRequest })
	if pr.Room != room || pr.Membership == nil || pr.Membership.Target != carol {
		t.Fatalf("portal request %+v", pr)
	}
	waitFor(t, "carol's client at C", func() error {
		_, err := loadClient(ctx, c.st, room, carol)
		return err
	})
	// The route was used for the Welcome and dropped; B got the commit but no Welcome.
	if n := countRows(t, a, "provider_kp_routes"); n != 0 {
		t.Errorf("%d KeyPackageRef routes left at the hub", n)
	}
	quiet(t, b, 200*time.Millisecond)

	for _, s := range []struct {
		from *node
		user event.UserURI
		to   []*node
	}{{a, alice, []*node{b, c}}, {b, bob, []*node{a, c}}, {c, carol, []*node{a, b}}} {
		m := message(t, room, s.user, "hello from "+string(s.user.Domain()))
		publishOut(t, s.from, m)
		for _, to := range s.to {
			expectText(t, to, m)
		}
	}
}

// TestWelcomeWithoutRecordedRef: B claims a KeyPackage of a user of C directly at C (not through
// the hub; the hub has its ref recorded for another room only) and submits a commit adding it:
// the hub refuses it, and the room's epoch stays.
func TestWelcomeWithoutRecordedRef(t *testing.T) {
	ctx := context.Background()
	a, b, c := trio(t)
	_, bob, room := invited(t, a, b)
	dave := event.NewUserURI(c.domain, "dave")
	if err := c.p.EnsureUser(ctx, dave, event.NetworkMatrix); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bob's client at B", func() error { _, err := loadClient(ctx, b.st, room, bob); return err })
	usr, err := loadUser(ctx, b.st, bob)
	if err != nil {
		t.Fatal(err)
	}
	req := claimRequest(t, usr, dave, room)
	resp, err := b.tp.Client.KeyMaterial(ctx, c.domain, dave, req) // directly at C
	if err != nil || len(resp.Clients) == 0 || resp.Clients[0].KeyPackage == nil {
		t.Fatalf("direct claim: %+v, %v", resp, err)
	}
	// A route recorded for another room does not count.
	ref, err := resp.Clients[0].KeyPackage.Ref()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.st.ExecContext(ctx, `INSERT INTO provider_kp_routes (ref, room, provider, expires_at) VALUES (?, ?, ?, ?)`,
		hexRef(ref), string(a.p.NewRoomID()), string(c.domain), time.Now().Add(time.Hour).UnixMilli()); err != nil {
		t.Fatal(err)
	}
	cl, err := loadClient(ctx, b.st, room, bob)
	if err != nil {
		t.Fatal(err)
	}
	// The commit B's provider would make (with the participant_list update), but with a
	// KeyPackage the hub never saw claimed.
	pc, err := cl.Group.Commit(mls.CommitOptions{Proposals: listAdds(t, cl.Group, dave), AppData: roomUpdater, Add: []*mls.KeyPackage{resp.Clients[0].KeyPackage}})
	if err != nil {
		t.Fatal(err)
	}
	tree, err := treeOf(groupInfoOf(t, pc))
	if err != nil {
		t.Fatal(err)
	}
	before, err := dbOf(a.st).loadRoom(ctx, room)
	if err != nil {
		t.Fatal(err)
	}
	ur, err := b.tp.Client.Update(ctx, room, &protocol.UpdateRequest{Bundle: protocol.HandshakeBundle{ProposalOrCommit: pc.Commit,
		Welcome:           pc.Welcome.Welcome,
		GroupInfoOption:   &protocol.GroupInfoOption{Representation: protocol.GroupInfoFull, GroupInfo: groupInfoOf(t, pc)},
		RatchetTreeOption: &protocol.RatchetTreeOption{Representation: protocol.RatchetTreeFull, RatchetTree: tree}}})
	if err != nil {
		t.Fatal(err)
	}
	if ur.ResponseCode != protocol.UpdateNotAllowed || !strings.Contains(ur.ErrorDescription, "KeyPackageRef") {
		t.Fatalf("update: code %d %q, want notAllowed for the unrecorded KeyPackageRef", ur.ResponseCode, ur.ErrorDescription)
	}
	if after, err := dbOf(a.st).loadRoom(ctx, room); err != nil || after.Epoch != before.Epoch {
		t.Fatalf("room epoch %d → %+v (%v)", before.Epoch, after, err)
	}
	if _, ok, err := dbOf(a.st).roleOf(ctx, room, dave); err != nil || ok {
		t.Fatalf("dave listed (%v)", err)
	}
}

// TestKeyMaterialRelayPolicy: the hub relays only for an active participant of the calling
// provider who may add participants, in a room it hosts, to configured partners.
func TestKeyMaterialRelayPolicy(t *testing.T) {
	ctx := context.Background()
	a, b, c := trio(t)
	_, bob, room := invited(t, a, b)
	outsider := event.NewUserURI(b.domain, "outsider")
	carol := event.NewUserURI(c.domain, "carol")
	for _, x := range []struct {
		n *node
		u event.UserURI
	}{{b, outsider}, {c, carol}} {
		if err := x.n.p.EnsureUser(ctx, x.u, event.NetworkMatrix); err != nil {
			t.Fatal(err)
		}
	}
	bobUser, err := loadUser(ctx, b.st, bob)
	if err != nil {
		t.Fatal(err)
	}
	outUser, err := loadUser(ctx, b.st, outsider)
	if err != nil {
		t.Fatal(err)
	}
	other := event.NewRoomURI(b.domain, "elsewhere")
	for _, tc := range []struct {
		name   string
		req    *protocol.KeyMaterialRequest
		status int                          // HTTP status of a refusal, 0 for a 200 answer
		user   protocol.KeyMaterialUserCode // user status of a 200 answer
	}{
		{"participant", claimRequest(t, bobUser, carol, room), 0, protocol.KeyMaterialUserSuccess},
		{"not a participant", claimRequest(t, outUser, carol, room), http.StatusForbidden, 0},
		{"room of another hub", claimRequest(t, bobUser, carol, other), 0, protocol.KeyMaterialUserNoConsent},
		{"not a claim for a room", claimRequest(t, bobUser, carol, ""), 0, protocol.KeyMaterialUserNoConsent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := b.tp.Client.KeyMaterial(ctx, a.domain, carol, tc.req)
			var he *protocol.HTTPError
			switch {
			case tc.status != 0:
				if !errors.As(err, &he) || he.Status != tc.status {
					t.Fatalf("got %+v, %v; want HTTP %d", resp, err, tc.status)
				}
			case err != nil:
				t.Fatal(err)
			case resp.UserStatus != tc.user:
				t.Fatalf("user status %d, want %d", resp.UserStatus, tc.user)
			}
		})
	}
	// B's provider claiming for the outsider through the hub gets a permanent refusal (the
	// mimi.out envelope is not retried).
	if _, err := b.p.keyPackageFor(ctx, room, outUser, carol); !errors.Is(err, errNotAllowed) {
		t.Fatalf("claim for a non-participant: %v, want errNotAllowed", err)
	}
	// The successful relay recorded where the KeyPackage came from.
	if n := countRows(t, a, "provider_kp_routes"); n != 1 {
		t.Fatalf("%d routes recorded, want 1", n)
	}
	// A claim relayed to a provider that is not the hub's partner is userUnknown.
	a.tp.Partners.Set([]protocol.Partner{b.tp.PartnerEntry(false)})
	resp, err := b.tp.Client.KeyMaterial(ctx, a.domain, carol, claimRequest(t, bobUser, carol, room))
	if err != nil || resp.UserStatus != protocol.KeyMaterialUserNoConsent {
		t.Fatalf("relay to a non-partner: %+v, %v", resp, err)
	}
}

// claimRequest is a KeyMaterialRequest of requester for target, for room (empty: for no room),
// signed with the requester's key.
func claimRequest(t testing.TB, requester *user, target event.UserURI, room event.RoomURI) *protocol.KeyMaterialRequest {
	t.Helper()
	req := &protocol.KeyMaterialRequest{Protocol: protocol.ProtocolMLS10,
		RequestingUser: protocol.IdentifierURI(requester.URI), TargetUser: protocol.IdentifierURI(target),
		RoomID: protocol.IdentifierURI(room), AcceptableCipherSuites: []mls.CipherSuite{requester.Signer.CipherSuite},
		RequesterSignatureKey: requester.Signer.Public, RequesterCredential: credentialOf(requester.URI)}
	if err := req.Sign(requester.Signer.Private); err != nil {
		t.Fatal(err)
	}
	return req
}

func countRows(t testing.TB, nd *node, table string) int {
	t.Helper()
	var n int
	if err := nd.st.QueryRowContext(context.Background(), fmt.Sprintf("SELECT COUNT(*) FROM %s", table)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestKeyMaterialRelayRate: the hub relays at most DefaultRelayRate.Burst claims of one
// follower at once (each for another user of the third provider, so that no other bucket is
// in the way); the next is 429 with Retry-After (one Interval), counted as relay_rate, and never
// reaches the third provider. One Interval later exactly one more claim is relayed. The hub's
// clock stands still during the claims, so that how long they take does not refill the bucket.
func TestKeyMaterialRelayRate(t *testing.T) {
	ctx := context.Background()
	clk := &shiftClock{}
	a, b, c := trioConf(t, func(c *Config) { c.Now = clk.now })
	_, bob, room := invited(t, a, b)
	bobUser, err := loadUser(ctx, b.st, bob)
	if err != nil {
		t.Fatal(err)
	}
	clk.stop()
	burst := DefaultRelayRate.Burst
	claim := func(i int) (*protocol.KeyMaterialResponse, error) {
		target := event.NewUserURI(c.domain, fmt.Sprintf("u%d", i))
		return b.tp.Client.KeyMaterial(ctx, a.domain, target, claimRequest(t, bobUser, target, room))
	}
	relayed := func(i int) {
		t.Helper()
		if resp, err := claim(i); err != nil || resp.UserStatus != protocol.KeyMaterialUserNoConsent {
			t.Fatalf("claim %d: %+v, %v; want relayed (noConsent: nobody there)", i, resp, err)
		}
	}
	refused := func(i int) {
		t.Helper()
		resp, err := claim(i)
		var he *protocol.HTTPError
		if !errors.As(err, &he) || he.Status != http.StatusTooManyRequests || he.RetryAfter != DefaultRelayRate.Interval {
			t.Fatalf("claim %d: %+v, %v; want 429 with Retry-After %v", i, resp, err, DefaultRelayRate.Interval)
		}
	}
	for i := range burst {
		relayed(i)
	}
	refused(burst)
	clk.add(DefaultRelayRate.Interval)
	relayed(burst + 1)
	refused(burst + 2)
	if n := testutil.ToFloat64(a.p.met.refusals.WithLabelValues("keyMaterial", "relay_rate")); n != 2 {
		t.Errorf("relay_rate refusals %v, want 2", n)
	}
	if n := testutil.ToFloat64(c.p.met.refusals.WithLabelValues("keyMaterial", "unknown_user")); n != float64(burst+1) {
		t.Errorf("the third provider answered %v claims, want %d", n, burst+1)
	}
}
