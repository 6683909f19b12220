package provider

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/room"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/store/storetest"
)

// groupLists returns the participant list in the GroupContext of every local client in r.
func groupLists(ctx context.Context, nd *node, r event.RoomURI) ([][]room.Participant, error) {
	clients, err := loadClients(ctx, nd.st, r)
	if err != nil {
		return nil, err
	}
	var out [][]room.Participant
	for _, c := range clients {
		s, err := room.StateOfGroup(c.Group)
		if err != nil {
			return nil, err
		}
		out = append(out, s.Participants.Participants)
	}
	return out, nil
}

// expectList waits until every local client of r on each node (that has one) carries want in
// its GroupContext, and the hub's participant index says the same.
func expectList(t *testing.T, r event.RoomURI, hub *node, want []room.Participant, nodes ...*node) {
	t.Helper()
	ctx := context.Background()
	waitFor(t, fmt.Sprintf("participant list %v", want), func() error {
		for _, nd := range nodes {
			lists, err := groupLists(ctx, nd, r)
			if err != nil {
				return err
			}
			if len(lists) == 0 {
				return fmt.Errorf("%s has no client in the room", nd.domain)
			}
			for _, l := range lists {
				if !slices.Equal(l, want) {
					return fmt.Errorf("%s: list %v", nd.domain, l)
				}
			}
		}
		for _, p := range want {
			role, ok, err := dbOf(hub.st).roleOf(ctx, r, p.User)
			if err != nil || !ok || role != p.Role {
				return fmt.Errorf("hub index: %s role %d %v (%v)", p.User, role, ok, err)
			}
		}
		var n int
		if err := hub.st.QueryRowContext(ctx, `SELECT COUNT(*) FROM provider_participants WHERE room = ?`, string(r)).Scan(&n); err != nil || n != len(want) {
			return fmt.Errorf("hub index has %d entries (%v)", n, err)
		}
		return nil
	})
}

func hubEpoch(t *testing.T, nd *node, r event.RoomURI) uint64 {
	t.Helper()
	rr, err := dbOf(nd.st).loadRoom(context.Background(), r)
	if err != nil || rr == nil {
		t.Fatalf("room: %+v %v", rr, err)
	}
	return rr.Epoch
}

// commitAs makes u's client on nd commit o directly (as handleOut would), returning the error.
func commitAs(nd *node, r event.RoomURI, u event.UserURI, o *localCommit) error {
	unlock := nd.p.lockRoom(r)
	defer unlock()
	return nd.p.commitLocal(context.Background(), r, u, o, "")
}

// ensureUsers registers Matrix users on nd.
func ensureUsers(t *testing.T, nd *node, us ...event.UserURI) {
	t.Helper()
	for _, u := range us {
		if err := nd.p.EnsureUser(context.Background(), u, event.NetworkMatrix); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRoomStateInMLS walks a room through adds, role changes, refused changes, hostile follower
// commits, a leave, a metadata change and a ban, checking the participant list in the
// GroupContext of the clients on both providers after each step.
func TestRoomStateInMLS(t *testing.T) { roomStateInMLS(t, storetest.SQLiteConfig) }

// TestRoomStateInMLSPostgres is TestRoomStateInMLS with both providers on PostgreSQL.
func TestRoomStateInMLSPostgres(t *testing.T) { roomStateInMLS(t, storetest.PostgresConfig) }

func roomStateInMLS(t *testing.T, cfg func(testing.TB) store.Config) {
	ctx := context.Background()
	a, b := pairOn(t, cfg)
	alice := event.NewUserURI(a.domain, "alice")
	carol := event.NewUserURI(a.domain, "carol")
	dave := event.NewUserURI(a.domain, "dave")
	erin := event.NewUserURI(a.domain, "erin")
	bob := event.NewUserURI(b.domain, "bob")
	bob2 := event.NewUserURI(b.domain, "bob2")
	ensureUsers(t, b, bob, bob2)
	ensureUsers(t, a, carol, dave, erin)
	r := a.p.NewRoomID()
	P := func(u event.UserURI, role room.RoleIndex) room.Participant {
		return room.Participant{User: u, Role: role}
	}

	// Creation and adds: the creator is owner, added users regular, in the order of the adds.
	publishOut(t, a, membership(r, alice, event.MembershipInvite, bob))
	expect(t, b, "portal request", func(e *event.Envelope) bool { return e.Kind == event.KindPortalRequest })
	expectList(t, r, a, []room.Participant{P(alice, 4), P(bob, 2)}, a, b)
	c, err := loadClient(ctx, a.st, r, alice)
	if err != nil {
		t.Fatal(err)
	}
	st, err := room.StateOfGroup(c.Group)
	if err != nil || st.Roles == nil || st.Metadata == nil || st.Metadata.RoomURI != r || !framed(c.Group) {
		t.Fatalf("room state at creation: %+v %v", st, err)
	}
	publishOut(t, a, membership(r, alice, event.MembershipInvite, carol))
	expectList(t, r, a, []room.Participant{P(alice, 4), P(bob, 2), P(carol, 2)}, a, b)
	publishOut(t, b, membership(r, bob, event.MembershipInvite, bob2)) // a follower's commit
	expectList(t, r, a, []room.Participant{P(alice, 4), P(bob, 2), P(carol, 2), P(bob2, 2)}, a, b)
	for _, w := range []struct {
		nd *node
		u  event.UserURI
	}{{b, bob2}, {a, carol}} {
		waitFor(t, fmt.Sprintf("%s's client", w.u), func() error {
			_, err := loadClient(ctx, w.nd.st, r, w.u)
			return err
		})
	}

	// Regular users may not ban, remove or change roles: refused, nothing changes.
	epoch := hubEpoch(t, a, r)
	for _, tc := range []struct {
		nd   *node
		u    event.UserURI
		o    localCommit
		what string
	}{
		{b, bob2, localCommit{remove: []event.UserURI{carol}, ban: true}, "follower's regular user bans"},
		{b, bob2, localCommit{remove: []event.UserURI{carol}}, "follower's regular user removes"},
		{b, bob2, localCommit{roles: []roleChange{{carol, room.RoleAdmin}}}, "follower's regular user changes a role"},
		{a, carol, localCommit{remove: []event.UserURI{bob}}, "hub's regular user removes"},
		{a, carol, localCommit{remove: []event.UserURI{bob}, ban: true}, "hub's regular user bans"},
		{a, carol, localCommit{meta: &room.Metadata{RoomURI: r, Name: "mine"}}, "regular user renames"},
	} {
		if err := commitAs(tc.nd, r, tc.u, &tc.o); !errors.Is(err, errNotAllowed) {
			t.Fatalf("%s: %v, want notAllowed", tc.what, err)
		}
	}
	if e := hubEpoch(t, a, r); e != epoch {
		t.Fatalf("room epoch %d → %d after refused commits", epoch, e)
	}
	// The follower's own check agrees: a regular user's ban, processed by another client of B,
	// is refused by verifyCommit (counted, since only the hub enforces).
	c2, err := loadClient(ctx, b.st, r, bob2)
	if err != nil {
		t.Fatal(err)
	}
	st2, err := room.StateOfGroup(c2.Group)
	if err != nil {
		t.Fatal(err)
	}
	ban, _ := (&room.ParticipantListUpdate{Changed: []room.RoleChange{{Index: uint32(st2.Participants.Index(carol)), Role: room.RoleBanned}}}).Proposal()
	var carolLeaf []mls.LeafIndex
	for _, m := range c2.Group.Members() {
		if u, _ := userOfCredential(&m.Credential); u == carol {
			carolLeaf = append(carolLeaf, m.Leaf)
		}
	}
	pc, err := c2.Group.Commit(mls.CommitOptions{Proposals: []mls.Proposal{ban}, Remove: carolLeaf, AppData: room.Updater{}})
	if err != nil {
		t.Fatal(err)
	}
	bc, err := loadClient(ctx, b.st, r, bob)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := bc.Group.Process(pc.Commit, mls.ProcessOptions{AppData: room.Updater{}})
	if err != nil {
		t.Fatal(err)
	}
	b.p.verifyCommit(ctx, r, bc.Group, rec, bob2)
	if n := b.p.policyRefusals.Load(); n != 1 {
		t.Fatalf("follower's check refused %d commits, want 1", n)
	}
	expectList(t, r, a, []room.Participant{P(alice, 4), P(bob, 2), P(carol, 2), P(bob2, 2)}, a, b)

	// The owner makes bob admin (an adapter's role change); bob, an admin on the follower,
	// makes carol admin; both sides see both changes.
	role := membership(r, alice, event.MembershipRole, bob)
	role.Membership.Role = room.RoleAdmin
	publishOut(t, a, role)
	expectList(t, r, a, []room.Participant{P(alice, 4), P(bob, 3), P(carol, 2), P(bob2, 2)}, a, b)
	role = membership(r, bob, event.MembershipRole, carol)
	role.Membership.Role = room.RoleAdmin
	publishOut(t, b, role)
	expectList(t, r, a, []room.Participant{P(alice, 4), P(bob, 3), P(carol, 3), P(bob2, 2)}, a, b)

	// Hostile follower commits (bob is admin, so only the consistency rules can refuse them).
	hostile := func(what string, build func(g *mls.Group, st *room.State) mls.CommitOptions, want protocol.UpdateResponseCode) {
		t.Helper()
		bc, err := loadClient(ctx, b.st, r, bob)
		if err != nil {
			t.Fatal(err)
		}
		st, err := room.StateOfGroup(bc.Group)
		if err != nil {
			t.Fatal(err)
		}
		opts := build(bc.Group, st)
		if opts.AppData == nil {
			opts.AppData = room.Updater{}
		}
		pc, err := bc.Group.Commit(opts)
		if err != nil {
			t.Fatalf("%s: commit: %v", what, err)
		}
		bundle := protocol.HandshakeBundle{ProposalOrCommit: pc.Commit,
			GroupInfoOption:   &protocol.GroupInfoOption{Representation: protocol.GroupInfoFull, GroupInfo: groupInfoOf(t, pc)},
			RatchetTreeOption: &protocol.RatchetTreeOption{Representation: protocol.RatchetTreeDistributionService}}
		if pc.Welcome != nil {
			tree, err := treeOf(groupInfoOf(t, pc))
			if err != nil {
				t.Fatal(err)
			}
			bundle.Welcome = pc.Welcome.Welcome
			bundle.RatchetTreeOption = &protocol.RatchetTreeOption{Representation: protocol.RatchetTreeFull, RatchetTree: tree}
		}
		before := hubEpoch(t, a, r)
		resp, err := b.tp.Client.Update(ctx, r, &protocol.UpdateRequest{Bundle: bundle})
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		t.Logf("%s: refused: %s", what, resp.ErrorDescription)
		if resp.ResponseCode != want {
			t.Fatalf("%s: response %d (%s), want %d", what, resp.ResponseCode, resp.ErrorDescription, want)
		}
		if e := hubEpoch(t, a, r); e != before {
			t.Fatalf("%s: room epoch %d → %d", what, before, e)
		}
	}
	kp := func(target event.UserURI) *mls.KeyPackage {
		u, err := loadUser(ctx, b.st, bob)
		if err != nil {
			t.Fatal(err)
		}
		k, err := b.p.keyPackageFor(ctx, r, u, target)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	hostile("MLS Add without a participant-list add", func(*mls.Group, *room.State) mls.CommitOptions {
		return mls.CommitOptions{Add: []*mls.KeyPackage{kp(dave)}}
	}, protocol.UpdateNotAllowed)
	hostile("list add of one user, MLS Add of another", func(*mls.Group, *room.State) mls.CommitOptions {
		p, _ := (&room.ParticipantListUpdate{Added: []room.Participant{P(dave, 2)}}).Proposal()
		return mls.CommitOptions{Add: []*mls.KeyPackage{kp(erin)}, Proposals: []mls.Proposal{p}}
	}, protocol.UpdateNotAllowed)
	hostile("list removal leaving the user's client", func(_ *mls.Group, st *room.State) mls.CommitOptions {
		p, _ := (&room.ParticipantListUpdate{Removed: []uint32{uint32(st.Participants.Index(bob2))}}).Proposal()
		return mls.CommitOptions{Proposals: []mls.Proposal{p}}
	}, protocol.UpdateNotAllowed)
	hostile("ban leaving the user's client", func(_ *mls.Group, st *room.State) mls.CommitOptions {
		p, _ := (&room.ParticipantListUpdate{Changed: []room.RoleChange{{Index: uint32(st.Participants.Index(bob2)), Role: room.RoleBanned}}}).Proposal()
		return mls.CommitOptions{Proposals: []mls.Proposal{p}}
	}, protocol.UpdateNotAllowed)
	hostile("delta out of range", func(_ *mls.Group, st *room.State) mls.CommitOptions {
		// The committer's own Updater would refuse it: replace the participant list by a
		// ReplaceAppData commit whose payload is an update the hub's Updater cannot apply.
		p, _ := (&room.ParticipantListUpdate{Removed: []uint32{99}}).Proposal()
		return mls.CommitOptions{Proposals: []mls.Proposal{p}, AppData: mls.ReplaceAppData{}}
	}, protocol.UpdateInvalidProposal)
	expectList(t, r, a, []room.Participant{P(alice, 4), P(bob, 3), P(carol, 3), P(bob2, 2)}, a, b)

	// bob2 leaves (bob's client commits it: the provider speaks for its user).
	publishOut(t, b, membership(r, bob2, event.MembershipLeave, bob2))
	expectList(t, r, a, []room.Participant{P(alice, 4), P(bob, 3), P(carol, 3)}, a, b)

	// A metadata change reaches the other provider's bus and both GroupContexts.
	publishOut(t, a, &event.Envelope{Kind: event.KindRoomMetadata, Room: r, Sender: alice, Metadata: &event.Metadata{Name: "Ward 7", Topic: "handover at 7"}})
	got := expect(t, b, "room metadata", func(e *event.Envelope) bool { return e.Kind == event.KindRoomMetadata })
	if got.Room != r || got.Sender != alice || got.Metadata == nil || got.Metadata.Name != "Ward 7" || got.Metadata.Topic != "handover at 7" {
		t.Fatalf("metadata envelope %+v %+v", got, got.Metadata)
	}
	waitFor(t, "metadata in every GroupContext", func() error {
		for _, nd := range []*node{a, b} {
			clients, err := loadClients(ctx, nd.st, r)
			if err != nil {
				return err
			}
			for _, c := range clients {
				s, err := room.StateOfGroup(c.Group)
				if err != nil || s.Metadata.Name != "Ward 7" || s.Metadata.Subject != "handover at 7" || s.Metadata.RoomURI != r {
					return fmt.Errorf("%s: metadata %+v (%v)", nd.domain, s.Metadata, err)
				}
			}
		}
		return nil
	})
	// An admin on the follower may change the subject too.
	publishOut(t, b, &event.Envelope{Kind: event.KindRoomMetadata, Room: r, Sender: bob, Metadata: &event.Metadata{Topic: "night shift"}})
	got = expect(t, a, "room metadata from the follower", func(e *event.Envelope) bool { return e.Kind == event.KindRoomMetadata })
	if got.Metadata.Name != "Ward 7" || got.Metadata.Topic != "night shift" || got.Sender != bob {
		t.Fatalf("metadata envelope %+v", got.Metadata)
	}

	// The owner bans bob: his clients are removed with the role change.
	publishOut(t, a, membership(r, alice, event.MembershipBan, bob))
	expectList(t, r, a, []room.Participant{P(alice, 4), P(bob, 1), P(carol, 3)}, a)
	waitFor(t, "bob's client gone at B", func() error {
		if _, err := loadClient(ctx, b.st, r, bob); err == nil {
			return fmt.Errorf("still there")
		}
		return nil
	})
	// Every commit the hub sequenced passed the follower's own check too.
	if n := b.p.policyRefusals.Load(); n != 1 {
		t.Fatalf("follower's check refused %d commits, want only the test's 1", n)
	}
}
