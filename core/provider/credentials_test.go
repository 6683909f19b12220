package provider

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// forgedKeyPackage is a KeyPackage whose basic credential names victim, signed with a key the
// forger made itself.
func forgedKeyPackage(t testing.TB, victim event.UserURI) *mls.KeyPackage {
	t.Helper()
	s, err := mls.GenerateSigner(mls.MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	kp, _, err := mls.NewKeyPackage(s, credentialOf(victim), mls.KeyPackageOptions{Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// listAdds are the participant_list proposals a commit of g that adds users carries.
func listAdds(t testing.TB, g *mls.Group, users ...event.UserURI) []mls.Proposal {
	t.Helper()
	st, err := stateOfGroup(g)
	if err != nil {
		t.Fatal(err)
	}
	upd, err := listUpdate(st, &localCommit{add: users})
	if err != nil {
		t.Fatal(err)
	}
	props, err := stateProposals(upd, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return props
}

// commitBundle is the /update bundle of a commit made by g (without a Welcome: the forger has
// nobody to welcome).
func commitBundle(t testing.TB, g *mls.Group, o mls.CommitOptions) protocol.HandshakeBundle {
	t.Helper()
	o.AppData = roomUpdater
	pc, err := g.Commit(o)
	if err != nil {
		t.Fatal(err)
	}
	return protocol.HandshakeBundle{ProposalOrCommit: pc.Commit,
		GroupInfoOption:   &protocol.GroupInfoOption{Representation: protocol.GroupInfoFull, GroupInfo: groupInfoOf(t, pc)},
		RatchetTreeOption: &protocol.RatchetTreeOption{Representation: protocol.RatchetTreeDistributionService}}
}

// TestImpersonationForgedAddRefusedAtHub: eve, a regular member of Alice's room whose provider
// (c) is a partner of the hub (a), commits Adds of KeyPackages she made herself whose basic
// credentials name Alice (a user of the hub), Bob (a user of b, already in the room) and a user
// of b who is not, and an external commit whose joiner is Alice. The hub refuses each with
// notAllowed, the room's epoch stays, the refusals are counted; an Add of eve's own second
// client, vouched for by her own provider, is accepted.
func TestImpersonationForgedAddRefusedAtHub(t *testing.T) {
	ctx := context.Background()
	a, b, c := trio(t)
	alice, bob, room := invited(t, a, b)
	eve := event.NewUserURI(c.domain, "eve")
	if err := c.p.EnsureUser(ctx, eve, event.NetworkMatrix); err != nil {
		t.Fatal(err)
	}
	publishOut(t, a, membership(room, alice, event.MembershipInvite, eve))
	expect(t, c, "eve's portal request", func(e *event.Envelope) bool { return e.Kind == event.KindPortalRequest })
	eg := groupAtHubEpoch(t, a, c, room, eve)
	before, err := dbOf(a.st).loadRoom(ctx, room)
	if err != nil {
		t.Fatal(err)
	}
	for _, victim := range []event.UserURI{alice, bob, event.NewUserURI(b.domain, "mallory")} {
		t.Run(victim.Local(), func(t *testing.T) {
			o := mls.CommitOptions{Add: []*mls.KeyPackage{forgedKeyPackage(t, victim)}}
			if victim.Local() == "mallory" { // not listed yet: the list update a real commit carries
				o.Proposals = listAdds(t, eg, victim)
			}
			resp, err := c.tp.Client.Update(ctx, room, &protocol.UpdateRequest{Bundle: commitBundle(t, eg, o)})
			if err != nil {
				t.Fatal(err)
			}
			if resp.ResponseCode != protocol.UpdateNotAllowed || !strings.Contains(resp.ErrorDescription, "credential") {
				t.Fatalf("forged Add of %s: code %d %q, want notAllowed for the credential", victim, resp.ResponseCode, resp.ErrorDescription)
			}
			if rr, err := dbOf(a.st).loadRoom(ctx, room); err != nil || rr.Epoch != before.Epoch {
				t.Fatalf("room epoch %d → %+v (%v)", before.Epoch, rr, err)
			}
		})
	}
	if n := testutil.ToFloat64(a.p.met.refusals.WithLabelValues("update", "credential_own_key")); n != 1 {
		t.Errorf("credential_own_key refusals %v, want 1 (alice)", n)
	}
	if n := testutil.ToFloat64(a.p.met.refusals.WithLabelValues("update", "credential_unvouched")); n != 2 {
		t.Errorf("credential_unvouched refusals %v, want 2 (bob, mallory)", n)
	}

	// An external commit whose joiner is alice, sent by eve's provider (which holds the
	// room's GroupInfo through eve): the joiner must be a user of the submitting provider.
	gi, err := eg.GroupInfo()
	if err != nil {
		t.Fatal(err)
	}
	js, err := mls.GenerateSigner(mls.MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	ej, err := mls.ExternalJoin(gi.GroupInfo, js, credentialOf(alice), mls.ExternalJoinOptions{RatchetTree: eg.RatchetTree()})
	if err != nil {
		t.Fatal(err)
	}
	egi, err := ej.State.GroupInfo()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.tp.Client.Update(ctx, room, &protocol.UpdateRequest{Bundle: protocol.HandshakeBundle{ProposalOrCommit: ej.Commit,
		GroupInfoOption:   &protocol.GroupInfoOption{Representation: protocol.GroupInfoFull, GroupInfo: egi.GroupInfo},
		RatchetTreeOption: &protocol.RatchetTreeOption{Representation: protocol.RatchetTreeDistributionService}}})
	if err != nil || resp.ResponseCode != protocol.UpdateNotAllowed || !strings.Contains(resp.ErrorDescription, "may not commit for") {
		t.Fatalf("external join as alice by evil's provider: %+v, %v; want notAllowed", resp, err)
	}

	// The control: eve's own provider vouches for a second client of eve.
	resp, err = c.tp.Client.Update(ctx, room, &protocol.UpdateRequest{Bundle: commitBundle(t, eg,
		mls.CommitOptions{Add: []*mls.KeyPackage{forgedKeyPackage(t, eve)}})})
	if err != nil || resp.ResponseCode != protocol.UpdateSuccess {
		t.Fatalf("eve adds her own client: %+v, %v", resp, err)
	}
}

// TestCheckLeaves is the credential authority rule by rule (a.example is ours; the handshake
// comes from c.example).
func TestCheckLeaves(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		p := storeOnly(t, s, time.Now)
		alice := event.NewUserURI("a.example", "alice")
		if err := p.EnsureUser(ctx, alice, event.NetworkMatrix); err != nil {
			t.Fatal(err)
		}
		usr, err := loadUser(ctx, s, alice)
		if err != nil {
			t.Fatal(err)
		}
		room := event.NewRoomURI("a.example", "r1")
		bob := event.NewUserURI("b.example", "bob")
		carol := event.NewUserURI("c.example", "carol")
		bobKP, routedKP, pendingKP := forgedKeyPackage(t, bob), forgedKeyPackage(t, bob), forgedKeyPackage(t, bob)
		err = s.InTx(ctx, func(tx *store.Tx) error { return recordRoute(ctx, tx, room, "b.example", routedKP) })
		if err != nil {
			t.Fatal(err)
		}
		leaf := func(u event.UserURI, key []byte) mls.Member {
			return mls.Member{Leaf: 3, Credential: credentialOf(u), SignatureKey: key}
		}
		other := []byte("another key")
		rejoinKey := []byte("a rejoin's leaf key")
		if err := p.recordLeafKey(ctx, alice, rejoinKey); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name   string
			change leafChange
			reason string // "" accepted
		}{
			{"our user with our key", leafChange{After: leaf(alice, usr.Signer.Public)}, ""},
			{"our user with another key", leafChange{After: leaf(alice, other)}, "own_key"},
			{"our user with a leaf key we made for a rejoin", leafChange{After: leaf(alice, rejoinKey)}, ""},
			{"another user of ours with that leaf key", leafChange{After: leaf(event.NewUserURI("a.example", "bert"), rejoinKey)}, "own_key"},
			{"our user who does not exist", leafChange{After: leaf(event.NewUserURI("a.example", "nobody"), other)}, "own_key"},
			{"the submitter's own user", leafChange{After: leaf(carol, other)}, ""},
			{"a third provider's user, claimed through us", leafChange{After: leaf(bob, routedKP.LeafNode.SignatureKey)}, ""},
			{"a third provider's user, pending Add", leafChange{After: leaf(bob, pendingKP.LeafNode.SignatureKey)}, ""},
			{"a third provider's user, never claimed", leafChange{After: leaf(bob, bobKP.LeafNode.SignatureKey)}, "unvouched"},
			{"a new key of the same user", leafChange{Before: ptr(leaf(carol, other)), After: leaf(carol, []byte("k2"))}, ""},
			{"identity changed", leafChange{Before: ptr(leaf(carol, other)), After: leaf(bob, other)}, "identity_changed"},
			{"our user's leaf given a foreign key", leafChange{Before: ptr(leaf(alice, usr.Signer.Public)), After: leaf(alice, other)}, "own_key"},
			{"not a user URI", leafChange{After: mls.Member{Credential: mls.Credential{Type: mls.CredentialTypeBasic, Identity: []byte("eve")}}}, "not_a_user"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				v := &vouch{own: "a.example", room: room, submitter: "c.example",
					pending:     map[string]bool{hexRef(pendingKP.LeafNode.SignatureKey): true},
					keyPackages: []*mls.KeyPackage{bobKP, routedKP, pendingKP}}
				_, err := checkLeaves(ctx, s, v, []leafChange{tc.change})
				var ce *errCredential
				switch {
				case tc.reason == "" && err != nil:
					t.Fatalf("refused: %v", err)
				case tc.reason != "" && (!errors.As(err, &ce) || ce.Reason != tc.reason || !errors.Is(err, errNotAllowed)):
					t.Fatalf("got %v, want a %s refusal", err, tc.reason)
				}
			})
		}
	})
}

func ptr[T any](v T) *T { return &v }

// TestImpersonationRefusedAtFollower bypasses the hub: evil.example hosts a room with Bob of
// good.example and sends good.example, as the room's hub, fanout that no honest hub would
// sequence: a commit adding a second leaf for Bob with a key eve made, then a commit whose
// Welcome brings Dave (a real KeyPackage of good.example) into a tree holding that forged leaf,
// then a message from eve's leaf whose content names Bob as its sender. good.example applies
// none of it: Bob's client stays in its epoch, Dave joins nothing, both forged leaves are
// recorded as credential alerts and counted, and the message is discarded; a plain message of
// eve's afterwards is delivered as eve's.
func TestImpersonationRefusedAtFollower(t *testing.T) {
	ctx := context.Background()
	n := protocoltest.NewNetwork()
	ca := protocoltest.NewCA(t)
	evil := newNode(t, n, ca, "evil.example", storetest.SQLiteConfig(t))
	good := newNode(t, n, ca, "good.example", storetest.SQLiteConfig(t))
	evil.tp.Partners.Set([]protocol.Partner{good.tp.PartnerEntry(false)})
	good.tp.Partners.Set([]protocol.Partner{evil.tp.PartnerEntry(false)})
	evil.start(t)
	good.start(t)
	eve, bob, room := invited(t, evil, good)
	var bobBefore *clientState
	waitFor(t, "bob's client", func() (err error) { bobBefore, err = loadClient(ctx, good.st, room, bob); return err })
	eveClient, err := loadClient(ctx, evil.st, room, eve)
	if err != nil {
		t.Fatal(err)
	}
	eg := eveClient.Group
	notify := func(msgs ...*protocol.FanoutMessage) {
		t.Helper()
		body, err := protocol.EncodeFanoutMessages(msgs)
		if err != nil {
			t.Fatal(err)
		}
		if err := evil.tp.Client.Notify(ctx, good.domain, room, body); err != nil {
			t.Fatal(err)
		}
	}
	alerts := func(want int) []CredentialAlert {
		t.Helper()
		var as []CredentialAlert
		waitFor(t, "credential alerts", func() (err error) {
			if as, err = good.p.CredentialAlerts(ctx, 0); err == nil && len(as) != want {
				err = errors.New("not yet")
			}
			return err
		})
		return as
	}

	// 1. A commit adding a forged leaf for Bob.
	pc, err := eg.Commit(mls.CommitOptions{Add: []*mls.KeyPackage{forgedKeyPackage(t, bob)}, AppData: roomUpdater})
	if err != nil {
		t.Fatal(err)
	}
	notify(&protocol.FanoutMessage{Timestamp: uint64(time.Now().UnixMilli()), Message: pc.Commit})
	if as := alerts(1); as[0].User != bob || as[0].Hub != evil.domain || as[0].Room != room || as[0].Reason != "commit" {
		t.Fatalf("alert %+v", as[0])
	}

	// 2. A Welcome for Dave into a tree with the forged leaf.
	dave := event.NewUserURI(good.domain, "dave")
	if err := good.p.EnsureUser(ctx, dave, event.NetworkMatrix); err != nil {
		t.Fatal(err)
	}
	eveUser, err := loadUser(ctx, evil.st, eve)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := evil.tp.Client.KeyMaterial(ctx, good.domain, dave, claimRequest(t, eveUser, dave, room))
	if err != nil || len(kr.Clients) == 0 || kr.Clients[0].KeyPackage == nil {
		t.Fatalf("claim dave: %+v %v", kr, err)
	}
	pc, err = eg.Commit(mls.CommitOptions{Add: []*mls.KeyPackage{forgedKeyPackage(t, bob), kr.Clients[0].KeyPackage}, Proposals: listAdds(t, eg, dave), AppData: roomUpdater})
	if err != nil {
		t.Fatal(err)
	}
	tree, err := treeOf(groupInfoOf(t, pc))
	if err != nil {
		t.Fatal(err)
	}
	ts := uint64(time.Now().UnixMilli())
	notify(&protocol.FanoutMessage{Timestamp: ts, Message: pc.Commit},
		&protocol.FanoutMessage{Timestamp: ts, Message: pc.Welcome, RatchetTreeOption: &protocol.RatchetTreeOption{Representation: protocol.RatchetTreeFull, RatchetTree: tree}})
	as := alerts(3) // the commit again, and the Welcome's tree
	if as[0].Reason != "welcome" || as[0].User != bob {
		t.Fatalf("newest alert %+v, want the Welcome's forged bob", as[0])
	}
	if _, err := loadClient(ctx, good.st, room, dave); !errors.Is(err, ErrUnknownUser) {
		t.Fatalf("dave joined a room with a forged leaf (%v)", err)
	}
	if bc, err := loadClient(ctx, good.st, room, bob); err != nil || bc.Group.Epoch() != bobBefore.Group.Epoch() {
		t.Fatalf("bob's client moved to another epoch (%v)", err)
	}
	if n := testutil.ToFloat64(good.p.met.credentialAlerts); n != 3 {
		t.Errorf("credential alerts metric %v, want 3", n)
	}

	// 3. eve's leaf sends content that names Bob as its sender; then a plain message.
	forged := message(t, room, bob, "I resign")
	forged.Sender = eve // evil's adapter hands eve's provider content that names bob
	publishOut(t, evil, forged)
	plain := message(t, room, eve, "hello")
	publishOut(t, evil, plain)
	expectText(t, good, plain) // the first message good.example delivers is eve's own
	if n := testutil.ToFloat64(good.p.met.refusals.WithLabelValues("notify", "sender_mismatch")); n != 1 {
		t.Errorf("sender mismatches %v, want 1", n)
	}
}

// TestEnumerationNoEpochToNonMembers: a commit for an old epoch of Alice's room gets wrongEpoch
// with the room's epoch when Bob's provider sends it, and a plain notAllowed, without the epoch,
// when a provider with nobody in the room sends the same bytes.
func TestEnumerationNoEpochToNonMembers(t *testing.T) {
	ctx := context.Background()
	a, b, c := trio(t)
	_, _, room := invited(t, a, b)
	s, err := mls.GenerateSigner(mls.MLS128DHKEMX25519AES128GCMSHA256Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	g, err := mls.CreateGroup(groupID(room), s, credentialOf(event.NewUserURI(c.domain, "eve")), mls.GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	req := &protocol.UpdateRequest{Bundle: commitBundle(t, g, mls.CommitOptions{})}
	rr, err := dbOf(a.st).loadRoom(ctx, room)
	if err != nil || rr.Epoch == 0 {
		t.Fatalf("room %+v (%v)", rr, err)
	}
	resp, err := b.tp.Client.Update(ctx, room, req)
	if err != nil || resp.ResponseCode != protocol.UpdateWrongEpoch || resp.CurrentEpoch != rr.Epoch {
		t.Fatalf("participant's provider: %+v, %v; want wrongEpoch at %d", resp, err, rr.Epoch)
	}
	resp, err = c.tp.Client.Update(ctx, room, req)
	if err != nil || resp.ResponseCode != protocol.UpdateNotAllowed || resp.CurrentEpoch != 0 {
		t.Fatalf("outsider: %+v, %v; want notAllowed without an epoch", resp, err)
	}
	// Probing: a commit at the room's own epoch (which the hub cannot apply) and a commit for a
	// room that does not exist get the outsider the same answer.
	want := resp
	for g.Epoch() < rr.Epoch {
		pc, err := g.Commit(mls.CommitOptions{AppData: roomUpdater})
		if err != nil {
			t.Fatal(err)
		}
		if g, err = pc.Confirm(); err != nil {
			t.Fatal(err)
		}
	}
	atEpoch := &protocol.UpdateRequest{Bundle: commitBundle(t, g, mls.CommitOptions{})}
	if resp, err := b.tp.Client.Update(ctx, room, atEpoch); err != nil || resp.ResponseCode != protocol.UpdateInvalidProposal {
		t.Fatalf("participant's provider at the room's epoch: %+v, %v; want invalidProposal", resp, err)
	}
	for _, r := range []event.RoomURI{room, event.NewRoomURI(a.domain, "nowhere")} {
		resp, err := c.tp.Client.Update(ctx, r, atEpoch)
		if err != nil || !reflect.DeepEqual(resp, want) {
			t.Fatalf("outsider at the room's epoch for %s: %+v, %v; want %+v", r, resp, err, want)
		}
	}
}
