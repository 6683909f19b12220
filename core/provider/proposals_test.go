package provider

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/room"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// twoPartyRoom makes a room at A with alice and B's bob (Bob joined).
func twoPartyRoom(t *testing.T, a, b *node) (room event.RoomURI, alice, bob event.UserURI) {
	t.Helper()
	ctx := context.Background()
	alice = event.NewUserURI(a.domain, "alice")
	bob = event.NewUserURI(b.domain, "bob")
	if err := b.p.EnsureUser(ctx, bob, event.NetworkMatrix); err != nil {
		t.Fatal(err)
	}
	room = a.p.NewRoomID()
	publishOut(t, a, membership(room, alice, event.MembershipInvite, bob))
	expect(t, b, "portal request", func(e *event.Envelope) bool { return e.Kind == event.KindPortalRequest })
	waitFor(t, "bob's client stored", func() error {
		_, err := loadClient(ctx, b.st, room, bob)
		return err
	})
	return room, alice, bob
}

// hasMember reports whether g has a leaf of user u.
func hasMember(g *mls.Group, u event.UserURI) bool { return len(leavesOf(g, u)) > 0 }

// waitLeft waits until u is no longer a participant at hub, u's client at home is gone, and
// observer's client at obs is at epoch and has no leaf of u.
func waitLeft(t *testing.T, hub *node, room event.RoomURI, u event.UserURI, home, obs *node, observer event.UserURI, epoch uint64) {
	t.Helper()
	ctx := context.Background()
	waitFor(t, fmt.Sprintf("%s left", u), func() error {
		if _, ok, err := dbOf(hub.st).roleOf(ctx, room, u); err != nil || ok {
			return fmt.Errorf("%s still a participant (%v)", u, err)
		}
		if _, err := loadClient(ctx, home.st, room, u); err == nil {
			return fmt.Errorf("%s still has a client at %s", u, home.domain)
		}
		c, err := loadClient(ctx, obs.st, room, observer)
		if err != nil {
			return err
		}
		if c.Group.Epoch() != epoch || hasMember(c.Group, u) {
			return fmt.Errorf("%s's group at epoch %d (want %d), %s member: %v", observer, c.Group.Epoch(), epoch, u, hasMember(c.Group, u))
		}
		return nil
	})
}

// storedFor returns the proposals stored at nd for room whose target is u.
func storedFor(t *testing.T, nd *node, room event.RoomURI, u event.UserURI) (raw [][]byte, accepted []uint64) {
	t.Helper()
	rows, err := nd.st.QueryContext(context.Background(), `SELECT message, accepted FROM provider_proposals WHERE room = ? AND target = ? ORDER BY id`, string(room), string(u))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			m   []byte
			acc int64
		)
		if err := rows.Scan(&m, &acc); err != nil {
			t.Fatal(err)
		}
		raw, accepted = append(raw, m), append(accepted, uint64(acc))
	}
	return raw, accepted
}

// TestLeaveBySelfRemove: B's only user in A's room leaves. Bob's client proposes SelfRemove
// (/update, proposal bundle), the hub accepts and fans it out, Alice's client (the hub's, the
// designated committer) commits it; the hub drops Bob from the participants, B deletes Bob's
// client, and B's later messages for Bob are refused. A resubmission of the same proposal gets the
// same answer.
func TestLeaveBySelfRemove(t *testing.T) { testLeaveBySelfRemove(t, storetest.SQLiteConfig) }

// TestLeaveBySelfRemovePostgres is TestLeaveBySelfRemove with both providers on PostgreSQL.
func TestLeaveBySelfRemovePostgres(t *testing.T) { testLeaveBySelfRemove(t, storetest.PostgresConfig) }

func testLeaveBySelfRemove(t *testing.T, cfg func(testing.TB) store.Config) {
	ctx := context.Background()
	a, b := pairOn(t, cfg)
	room, alice, bob := twoPartyRoom(t, a, b)
	before, err := loadClient(ctx, b.st, room, bob)
	if err != nil {
		t.Fatal(err)
	}
	startEpoch := before.Group.Epoch()
	if es, ok := before.Group.Extensions().Find(mls.ExtensionExternalSenders); !ok {
		t.Fatal("the room has no external_senders extension")
	} else if senders, err := mls.ParseExternalSenders(es); err != nil || len(senders) != 1 || string(senders[0].Credential.Identity) != "mimi://a.example" {
		t.Fatalf("external_senders %+v (%v)", senders, err)
	}

	publishOut(t, b, membership(room, bob, event.MembershipLeave, bob))
	waitLeft(t, a, room, bob, b, a, alice, startEpoch+1)
	raw, acc := storedFor(t, a, room, bob)
	if len(raw) != 1 {
		t.Fatalf("%d SelfRemove proposals stored at the hub, want 1", len(raw))
	}
	prop, err := mls.DecodeMLSMessage(raw[0])
	if err != nil || prop.PublicMessage == nil || prop.PublicMessage.Content.Proposal.Type != mls.ProposalTypeSelfRemove {
		t.Fatalf("stored proposal %+v (%v)", prop, err)
	}
	rr, err := dbOf(a.st).loadRoom(ctx, room)
	if err != nil || rr.Epoch != startEpoch+1 {
		t.Fatalf("room epoch %+v (%v), want %d", rr, err, startEpoch+1)
	}

	// Same bytes again (a retry after a lost answer): the same answer, nothing new.
	resp, err := b.tp.Client.Update(ctx, room, &protocol.UpdateRequest{Bundle: protocol.HandshakeBundle{ProposalOrCommit: prop}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.ResponseCode != protocol.UpdateSuccess || resp.AcceptedTimestamp != acc[0] {
		t.Fatalf("resubmitted proposal: %+v, want success at %d", resp, acc[0])
	}
	if raw, _ := storedFor(t, a, room, bob); len(raw) != 1 {
		t.Fatalf("%d proposals stored after the resubmission", len(raw))
	}

	// B's later messages for Bob: refused at B (no client) and at the hub (not a participant).
	publishOut(t, b, message(t, room, bob, "still here?"))
	quiet(t, a, time.Second)
	msg, err := before.Group.Encrypt([]byte("sneaky"), nil)
	if err != nil {
		t.Fatal(err)
	}
	sr, err := b.tp.Client.SubmitMessage(ctx, room, &protocol.SubmitMessageRequest{Protocol: protocol.ProtocolMLS10, AppMessage: msg, SendingURI: protocol.IdentifierURI(bob)})
	if err != nil {
		t.Fatal(err)
	}
	if sr.StatusCode != protocol.SubmitNotAllowed {
		t.Fatalf("message of a user who left: status %d, want notAllowed", sr.StatusCode)
	}
}

// TestPendingProposalsAtHub: Alice, the hub's last local user, leaves while Bob (B) stays, with
// B's listener down so that B misses the fanout. The SelfRemove stays pending (the hub has no
// client that can commit it; B is the designated committer and has not seen it):
//   - a commit of Bob's that omits it is refused with invalidProposal naming it;
//   - /groupInfo returns it in pending_proposals;
//   - Bob's external rejoin (a commit that cannot include it) makes the hub regenerate it as the
//     hub's external Remove of Alice in the new epoch, stapled to the commit's fanout; Bob's
//     client (the designated committer) commits it and Alice is gone on both sides.
func TestPendingProposalsAtHub(t *testing.T) {
	ctx := context.Background()
	a, b := pair(t)
	room, alice, bob := twoPartyRoom(t, a, b)
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := b.tp.Server.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}

	publishOut(t, a, membership(room, alice, event.MembershipLeave, alice))
	var pending []storedProposal
	waitFor(t, "alice's SelfRemove pending", func() error {
		rr, err := dbOf(a.st).loadRoom(ctx, room)
		if err != nil {
			return err
		}
		if pending, err = loadProposals(ctx, a.st, room, rr.Epoch); err != nil || len(pending) != 1 {
			return fmt.Errorf("%d pending (%v)", len(pending), err)
		}
		return nil
	})
	if pending[0].Target != alice {
		t.Fatalf("pending proposal for %s", pending[0].Target)
	}

	// A commit that omits the pending proposal.
	bc, err := loadClient(ctx, b.st, room, bob)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := bc.Group.Commit(mls.CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := b.tp.Client.Update(ctx, room, &protocol.UpdateRequest{Bundle: protocol.HandshakeBundle{ProposalOrCommit: pc.Commit,
		GroupInfoOption:   &protocol.GroupInfoOption{Representation: protocol.GroupInfoFull, GroupInfo: groupInfoOf(t, pc)},
		RatchetTreeOption: &protocol.RatchetTreeOption{Representation: protocol.RatchetTreeDistributionService}}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.ResponseCode != protocol.UpdateInvalidProposal || len(resp.InvalidProposals) != 1 || !bytes.Equal(resp.InvalidProposals[0], pending[0].Ref) {
		t.Fatalf("commit omitting a pending proposal: %+v, want invalidProposal [%x]", resp, pending[0].Ref)
	}
	if rr, err := dbOf(a.st).loadRoom(ctx, room); err != nil || rr.Epoch != bc.Group.Epoch() {
		t.Fatalf("room epoch moved: %+v (%v)", rr, err)
	}

	// /groupInfo carries the pending proposal.
	usr, err := loadUser(ctx, b.st, bob)
	if err != nil {
		t.Fatal(err)
	}
	priv, pub, err := usr.Signer.CipherSuite.GenerateHPKEKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	gr := &protocol.GroupInfoRequest{CipherSuite: usr.Signer.CipherSuite, RequestingSignatureKey: usr.Signer.Public,
		RequestingCredential: credentialOf(bob), GroupInfoPublicKey: pub}
	if err := gr.Sign(usr.Signer.Private); err != nil {
		t.Fatal(err)
	}
	gresp, err := b.tp.Client.GroupInfo(ctx, room, gr)
	if err != nil {
		t.Fatal(err)
	}
	tbe, err := gresp.Open(priv)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := pending[0].Msg.Encode()
	if len(tbe.PendingProposals) != 1 || tbe.PendingProposals[0].HubAcceptedTime != pending[0].Accepted {
		t.Fatalf("groupInfo pending proposals %+v", tbe.PendingProposals)
	}
	if got, _ := tbe.PendingProposals[0].Proposal.Encode(); !bytes.Equal(got, want) {
		t.Fatal("groupInfo pending proposal differs from the stored one")
	}

	// B comes back without the proposal's fanout and rejoins by external commit.
	if _, err := a.st.ExecContext(ctx, `DELETE FROM protocol_outbox WHERE follower = ?`, string(b.domain)); err != nil {
		t.Fatal(err)
	}
	b.tp.Start(t)
	func() {
		unlock := b.p.lockRoom(room)
		defer unlock()
		if err := b.p.rejoin(ctx, room, bob); err != nil {
			t.Fatal(err)
		}
	}()
	// Bob's epochs: the external commit, then his commit of the regenerated Remove of Alice.
	waitLeft(t, a, room, alice, a, b, bob, bc.Group.Epoch()+2)
	// The hub keeps the proposals of the epoch just committed (for resubmissions): the
	// regenerated one; Alice's SelfRemove of the epoch before is forgotten.
	raw, _ := storedFor(t, a, room, alice)
	if len(raw) != 1 {
		t.Fatalf("%d proposals for alice stored at the hub, want the regenerated one", len(raw))
	}
	regen, err := mls.DecodeMLSMessage(raw[0])
	if err != nil {
		t.Fatal(err)
	}
	if fc := regen.PublicMessage.Content; fc.Sender.Type != mls.SenderTypeExternal || fc.Proposal.Type != mls.ProposalTypeRemove {
		t.Fatalf("regenerated proposal from %v: %v", fc.Sender.Type, fc.Proposal.Type)
	}
}

// TestLastHubUserLeaves: Alice, the hub's only local user, leaves while Bob stays: the hub has no
// client that can commit her SelfRemove, so Bob's client (B, the designated committer) commits it
// through /update. The hub then has no client in the room and keeps sequencing it with its
// public view (P20): publicview_test.go continues from here.
func TestLastHubUserLeaves(t *testing.T) {
	a, b := pair(t)
	lastHubUserLeaves(t, a, b)
}

// lastHubUserLeaves makes a two-party room (Alice at the hub a, Bob at b) and has Alice leave.
func lastHubUserLeaves(t *testing.T, a, b *node) (room event.RoomURI, bob event.UserURI) {
	t.Helper()
	ctx := context.Background()
	room, alice, bob := twoPartyRoom(t, a, b)
	bc, err := loadClient(ctx, b.st, room, bob)
	if err != nil {
		t.Fatal(err)
	}
	publishOut(t, a, membership(room, alice, event.MembershipLeave, alice))
	waitLeft(t, a, room, alice, a, b, bob, bc.Group.Epoch()+1)
	if rr, err := dbOf(a.st).loadRoom(ctx, room); err != nil || rr.Epoch != bc.Group.Epoch()+1 {
		t.Fatalf("hub's room epoch %+v (%v)", rr, err)
	}
	return room, bob
}

// TestLeaveAfterRejoin: Bob rejoined by external commit, which left his old leaf in the tree
// (core/mls has no resync). His leave proposes SelfRemove plus a Remove of the stale leaf, Alice's
// client commits both, and no leaf of Bob remains.
func TestLeaveAfterRejoin(t *testing.T) {
	ctx := context.Background()
	a, b := pair(t)
	room, alice, bob := twoPartyRoom(t, a, b)
	func() {
		unlock := b.p.lockRoom(room)
		defer unlock()
		if err := b.p.rejoin(ctx, room, bob); err != nil {
			t.Fatal(err)
		}
	}()
	var epoch uint64
	waitFor(t, "alice sees both of bob's leaves", func() error {
		ac, err := loadClient(ctx, a.st, room, alice)
		if err != nil {
			return err
		}
		if n := len(leavesOf(ac.Group, bob)); n != 2 {
			return fmt.Errorf("%d leaves of bob", n)
		}
		epoch = ac.Group.Epoch()
		return nil
	})
	publishOut(t, b, membership(room, bob, event.MembershipLeave, bob))
	waitLeft(t, a, room, bob, b, a, alice, epoch+1)
	if raw, _ := storedFor(t, a, room, bob); len(raw) != 2 {
		t.Fatalf("%d proposals for bob stored, want SelfRemove and the Remove of the stale leaf", len(raw))
	}
}

// TestProposalRefusals: proposals the hub refuses, with nothing stored or fanned out.
func TestProposalRefusals(t *testing.T) {
	ctx := context.Background()
	a, b := pair(t)
	room, alice, bob := twoPartyRoom(t, a, b)
	bc, err := loadClient(ctx, b.st, room, bob)
	if err != nil {
		t.Fatal(err)
	}
	ac, err := loadClient(ctx, a.st, room, alice)
	if err != nil {
		t.Fatal(err)
	}
	must := func(m *mls.MLSMessage, err error) *mls.MLSMessage {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	selfRemove := must(bc.Group.ProposeSelfRemove())
	// A second, private-handshake copy of bob's state (as another replica would load it).
	raw, err := bc.Group.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	copied, err := mls.LoadGroup(raw)
	if err != nil {
		t.Fatal(err)
	}
	privateBob, err := copied.WithConfig(mls.Config{PrivateHandshakes: true})
	if err != nil {
		t.Fatal(err)
	}
	private := must(privateBob.ProposeSelfRemove())
	removeAlice := must(bc.Group.ProposeRemove(ac.Group.LeafIndex()))
	removeSelf := must(bc.Group.ProposeRemove(bc.Group.LeafIndex()))
	aliceLeaves := must(ac.Group.ProposeSelfRemove())
	tooMany := make([]*mls.MLSMessage, maxBundleProposals)
	for i := range tooMany {
		tooMany[i] = selfRemove
	}
	for _, tc := range []struct {
		name   string
		bundle []*mls.MLSMessage
		want   protocol.UpdateResponseCode
		why    string // in the error description
	}{
		{"a regular user removes another provider's user", []*mls.MLSMessage{removeAlice}, protocol.UpdateNotAllowed, "may not remove"},
		{"PrivateMessage proposal", []*mls.MLSMessage{private}, protocol.UpdateNotAllowed, "PublicMessage only"},
		{"another provider's user's proposal", []*mls.MLSMessage{aliceLeaves}, protocol.UpdateNotAllowed, "may not propose"},
		{"too many proposals in a bundle", append([]*mls.MLSMessage{selfRemove}, tooMany...), protocol.UpdateNotAllowed, "at most"},
		{"the same leaf removed twice", []*mls.MLSMessage{selfRemove, removeSelf}, protocol.UpdateInvalidProposal, "conflicts with a pending proposal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := b.tp.Client.Update(ctx, room, &protocol.UpdateRequest{Bundle: protocol.HandshakeBundle{ProposalOrCommit: tc.bundle[0], MoreProposals: tc.bundle[1:]}})
			if err != nil {
				t.Fatal(err)
			}
			if resp.ResponseCode != tc.want || !strings.Contains(resp.ErrorDescription, tc.why) {
				t.Fatalf("answer %+v, want code %d", resp, tc.want)
			}
		})
	}
	var n int
	if err := a.st.QueryRowContext(ctx, `SELECT COUNT(*) FROM provider_proposals WHERE room = ?`, string(room)).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d proposals stored after refusals (%v)", n, err)
	}
	if rr, err := dbOf(a.st).loadRoom(ctx, room); err != nil || rr.Epoch != bc.Group.Epoch() {
		t.Fatalf("room epoch moved: %+v (%v)", rr, err)
	}
}

// TestMayRemoveOwn: a user's own removal of its last client is a leave (canRemoveSelf and an
// entry from its role to 0), of another client canRemoveOwnClient.
func TestMayRemoveOwn(t *testing.T) {
	owner := event.NewUserURI("a.example", "owner")
	u := event.NewUserURI("a.example", "u")
	withRegular := func(edit func(*room.RoleDef)) *room.State {
		st := room.NewState(event.NewRoomURI("a.example", "r"), owner)
		st.Participants.Participants = append(st.Participants.Participants, room.Participant{User: u, Role: room.RoleRegular})
		def, ok := st.Roles.Role(room.RoleRegular)
		if !ok {
			t.Fatal("no regular role")
		}
		edit(def)
		return st
	}
	drop := func(c room.Capability) func(*room.RoleDef) {
		return func(d *room.RoleDef) {
			d.Capabilities = slices.DeleteFunc(slices.Clone(d.Capabilities), func(x room.Capability) bool { return x == c })
		}
	}
	noLeaveEntry := func(d *room.RoleDef) {
		d.AuthorizedChanges = slices.DeleteFunc(slices.Clone(d.AuthorizedChanges), func(x room.RoleChangeTargets) bool { return x.From == room.RoleRegular })
	}
	for _, tc := range []struct {
		name string
		st   *room.State
		user event.UserURI
		last bool
		want bool
	}{
		{"default regular leaves", withRegular(func(*room.RoleDef) {}), u, true, true},
		{"default regular removes another own client", withRegular(func(*room.RoleDef) {}), u, false, true},
		{"without canRemoveSelf", withRegular(drop(room.CanRemoveSelf)), u, true, false},
		{"without the entry to 0", withRegular(noLeaveEntry), u, true, false},
		{"without canRemoveOwnClient", withRegular(drop(room.CanRemoveOwnClient)), u, false, false},
		{"without canRemoveOwnClient, leaving", withRegular(drop(room.CanRemoveOwnClient)), u, true, true},
		{"not listed", withRegular(func(*room.RoleDef) {}), event.NewUserURI("a.example", "stranger"), true, false},
		{"no roles_list", &room.State{Participants: &room.ParticipantList{}}, u, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := mayRemoveOwn(tc.st, tc.user, tc.last); got != tc.want {
				t.Fatalf("mayRemoveOwn = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestHubSignerConcurrentFirstUse: callers racing to create the hub key all get the same one.
func TestHubSignerConcurrentFirstUse(t *testing.T) {
	a, _ := pair(t)
	const n = 8
	keys := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := a.p.hubSigner(context.Background())
			if err == nil {
				keys[i] = s.Public
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if !bytes.Equal(keys[i], keys[0]) {
			t.Fatalf("caller %d got another hub key", i)
		}
	}
}
