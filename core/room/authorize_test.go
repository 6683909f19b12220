package room

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
)

const (
	eve   = event.UserURI("mimi://b.example/u/eve")
	frank = event.UserURI("mimi://b.example/u/frank")
	gina  = event.UserURI("mimi://a.example/u/gina")
)

// testState: alice owner, bob regular, carol admin, dave banned, frank regular (b.example), gina
// regular (a.example). Indices 0..5 in that order.
func testState() *State {
	return &State{
		Participants: users(Participant{alice, RoleOwner}, Participant{bob, RoleRegular}, Participant{carol, RoleAdmin},
			Participant{dave, RoleBanned}, Participant{frank, RoleRegular}, Participant{gina, RoleRegular}),
		Roles:    DefaultRoles(),
		Metadata: &Metadata{RoomURI: roomA, Name: "Club"},
	}
}

func clientsBefore() map[event.UserURI]int {
	return map[event.UserURI]int{alice: 1, bob: 1, carol: 1, frank: 1, gina: 1}
}

func plu(t testing.TB, u ParticipantListUpdate) mls.Proposal {
	t.Helper()
	p, err := u.Proposal()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func metaP(t testing.TB, m Metadata) mls.Proposal {
	t.Helper()
	p, err := m.Proposal()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAuthorize(t *testing.T) {
	type hs struct {
		committer event.UserURI
		submitter event.Domain
		external  bool
		props     []mls.Proposal
		added     []event.UserURI
		removed   []event.UserURI
	}
	limited := func(s *State) {
		rs := DefaultRoles()
		for i := range rs.Roles {
			if rs.Roles[i].Index == RoleOwner {
				rs.Roles[i].MinParticipants = 1
			}
			if rs.Roles[i].Index == RoleAdmin {
				rs.Roles[i].MaxParticipants = u32(1)
			}
		}
		s.Roles = rs
	}
	otherRoles := DefaultRoles()
	otherRoles.Roles = otherRoles.Roles[:4] // drops owner
	newRoles := DefaultRoles()
	newRoles.Roles[2].Description = "member"
	rolesP := func(rs *Roles) mls.Proposal { p, _ := rs.Proposal(); return p }
	policyP := func(bp *BasePolicy) mls.Proposal { p, _ := bp.Proposal(); return p }
	direct := func(s *State) { s.Policy = DirectPolicy() }
	cases := []struct {
		name  string
		state func(*State)
		h     hs
		err   error
		want  string
	}{
		// adds
		{"regular adds a regular user with a client", nil, hs{committer: bob, props: []mls.Proposal{plu(t, ParticipantListUpdate{Added: []Participant{{eve, RoleRegular}}})}, added: []event.UserURI{eve}}, nil, ""},
		{"regular adds an inactive participant", nil, hs{committer: bob, props: []mls.Proposal{plu(t, ParticipantListUpdate{Added: []Participant{{eve, RoleRegular}}})}}, nil, ""},
		{"regular adds an admin", nil, hs{committer: bob, props: []mls.Proposal{plu(t, ParticipantListUpdate{Added: []Participant{{eve, RoleAdmin}}})}, added: []event.UserURI{eve}}, ErrNotAllowed, "from role 0 to 3"},
		{"admin adds an admin", nil, hs{committer: carol, props: []mls.Proposal{plu(t, ParticipantListUpdate{Added: []Participant{{eve, RoleAdmin}}})}, added: []event.UserURI{eve}}, nil, ""},
		{"add with an undefined role", nil, hs{committer: alice, props: []mls.Proposal{plu(t, ParticipantListUpdate{Added: []Participant{{eve, 9}}})}}, ErrInvalid, "not defined"},
		{"client without a list add", nil, hs{committer: bob, added: []event.UserURI{eve}}, ErrNotAllowed, "not an active participant"},
		{"client of a banned user", nil, hs{committer: alice, added: []event.UserURI{dave}}, ErrNotAllowed, "not an active participant"},
		{"re-add a banned user", nil, hs{committer: alice, props: []mls.Proposal{plu(t, ParticipantListUpdate{Added: []Participant{{dave, RoleRegular}}})}, added: []event.UserURI{dave}}, ErrInvalid, "listed"},
		{"regular adds a client of a listed inactive user", func(s *State) {}, hs{committer: bob, added: []event.UserURI{gina, gina}}, nil, ""},
		// removals and leaves
		{"admin removes a regular user and its client", nil, hs{committer: carol, props: []mls.Proposal{plu(t, ParticipantListUpdate{Removed: []uint32{1}})}, removed: []event.UserURI{bob}}, nil, ""},
		{"removal leaves a client", nil, hs{committer: carol, props: []mls.Proposal{plu(t, ParticipantListUpdate{Removed: []uint32{1}})}}, ErrNotAllowed, "client(s) remain"},
		{"regular removes another provider's user", nil, hs{committer: gina, submitter: "a.example", props: []mls.Proposal{plu(t, ParticipantListUpdate{Removed: []uint32{1}})}, removed: []event.UserURI{bob}}, ErrNotAllowed, "canRemoveParticipant"},
		{"provider removes its own user (leave)", nil, hs{committer: frank, submitter: "b.example", props: []mls.Proposal{plu(t, ParticipantListUpdate{Removed: []uint32{1}})}, removed: []event.UserURI{bob}}, nil, ""},
		{"no leave reading without a submitter", nil, hs{committer: frank, props: []mls.Proposal{plu(t, ParticipantListUpdate{Removed: []uint32{1}})}, removed: []event.UserURI{bob}}, ErrNotAllowed, "canRemoveParticipant"},
		{"banned user cannot leave by removal", nil, hs{committer: frank, submitter: "b.example", props: []mls.Proposal{plu(t, ParticipantListUpdate{Removed: []uint32{3}})}}, ErrNotAllowed, "may not leave"},
		{"admin removes the owner", nil, hs{committer: carol, props: []mls.Proposal{plu(t, ParticipantListUpdate{Removed: []uint32{0}})}, removed: []event.UserURI{alice}}, ErrNotAllowed, "from role 4 to 0"},
		{"owner removes an admin", nil, hs{committer: alice, props: []mls.Proposal{plu(t, ParticipantListUpdate{Removed: []uint32{2}})}, removed: []event.UserURI{carol}}, nil, ""},
		{"minimum owners hold", limited, hs{committer: frank, submitter: "a.example", props: []mls.Proposal{plu(t, ParticipantListUpdate{Removed: []uint32{0}})}, removed: []event.UserURI{alice}}, ErrNotAllowed, "minimum"},
		// bans
		{"admin bans a regular user", nil, hs{committer: carol, props: []mls.Proposal{plu(t, ParticipantListUpdate{Changed: []RoleChange{{1, RoleBanned}}})}, removed: []event.UserURI{bob}}, nil, ""},
		{"ban leaves a client", nil, hs{committer: carol, props: []mls.Proposal{plu(t, ParticipantListUpdate{Changed: []RoleChange{{1, RoleBanned}}})}}, ErrNotAllowed, "client(s) remain"},
		{"regular bans", nil, hs{committer: gina, props: []mls.Proposal{plu(t, ParticipantListUpdate{Changed: []RoleChange{{1, RoleBanned}}})}, removed: []event.UserURI{bob}}, ErrNotAllowed, "canBan"},
		{"admin bans an unlisted user", nil, hs{committer: carol, props: []mls.Proposal{plu(t, ParticipantListUpdate{Added: []Participant{{eve, RoleBanned}}})}}, nil, ""},
		{"regular bans an unlisted user", nil, hs{committer: bob, props: []mls.Proposal{plu(t, ParticipantListUpdate{Added: []Participant{{eve, RoleBanned}}})}}, ErrNotAllowed, "canBan"},
		{"ban without a banned role", func(s *State) { s.Roles.Roles[1].Name = "muted" }, hs{committer: carol, props: []mls.Proposal{plu(t, ParticipantListUpdate{Changed: []RoleChange{{1, RoleBanned}}})}, removed: []event.UserURI{bob}}, ErrNotAllowed, "named"},
		{"admin unbans to regular", nil, hs{committer: carol, props: []mls.Proposal{plu(t, ParticipantListUpdate{Changed: []RoleChange{{3, RoleRegular}}})}}, nil, ""},
		{"admin unbans to admin", nil, hs{committer: carol, props: []mls.Proposal{plu(t, ParticipantListUpdate{Changed: []RoleChange{{3, RoleAdmin}}})}}, ErrNotAllowed, "from role 1 to 3"},
		{"regular unbans", nil, hs{committer: bob, props: []mls.Proposal{plu(t, ParticipantListUpdate{Changed: []RoleChange{{3, RoleRegular}}})}}, ErrNotAllowed, "canUnBan"},
		// role changes
		{"admin promotes a regular user", nil, hs{committer: carol, props: []mls.Proposal{plu(t, ParticipantListUpdate{Changed: []RoleChange{{1, RoleAdmin}}})}}, nil, ""},
		{"regular promotes", nil, hs{committer: gina, props: []mls.Proposal{plu(t, ParticipantListUpdate{Changed: []RoleChange{{1, RoleAdmin}}})}}, ErrNotAllowed, "canChangeUserRole"},
		{"admin makes an owner", nil, hs{committer: carol, props: []mls.Proposal{plu(t, ParticipantListUpdate{Changed: []RoleChange{{1, RoleOwner}}})}}, ErrNotAllowed, "from role 2 to 4"},
		{"owner makes an owner", nil, hs{committer: alice, props: []mls.Proposal{plu(t, ParticipantListUpdate{Changed: []RoleChange{{1, RoleOwner}}})}}, nil, ""},
		{"own role change", nil, hs{committer: carol, props: []mls.Proposal{plu(t, ParticipantListUpdate{Changed: []RoleChange{{2, RoleOwner}}})}}, ErrNotAllowed, "its own role"},
		{"maximum admins hold", limited, hs{committer: alice, props: []mls.Proposal{plu(t, ParticipantListUpdate{Changed: []RoleChange{{1, RoleAdmin}}})}}, ErrNotAllowed, "maximum"},
		{"user touched twice across updates", nil, hs{committer: alice, props: []mls.Proposal{
			plu(t, ParticipantListUpdate{Changed: []RoleChange{{1, RoleAdmin}}}), plu(t, ParticipantListUpdate{Removed: []uint32{1}})}, removed: []event.UserURI{bob}}, ErrInvalid, "twice"},
		// committers
		{"banned committer", nil, hs{committer: dave}, ErrNotAllowed, "may not commit"},
		{"unlisted committer", nil, hs{committer: eve}, ErrNotAllowed, "may not commit"},
		{"plain commit of a participant", nil, hs{committer: gina}, nil, ""},
		// clients only (kick, own clients)
		{"admin kicks a client", nil, hs{committer: carol, removed: []event.UserURI{bob}}, nil, ""},
		{"regular kicks a client", nil, hs{committer: gina, removed: []event.UserURI{bob}}, ErrNotAllowed, "canKick"},
		{"provider removes its user's client", nil, hs{committer: frank, submitter: "b.example", removed: []event.UserURI{bob}}, nil, ""},
		{"stray client removed", nil, hs{committer: gina, removed: []event.UserURI{eve}}, nil, ""},
		// external commits
		{"participant rejoins", nil, hs{committer: bob, external: true, added: []event.UserURI{bob}, removed: []event.UserURI{bob}}, nil, ""},
		{"banned user rejoins", nil, hs{committer: dave, external: true, added: []event.UserURI{dave}}, ErrNotAllowed, "may not commit"},
		{"outsider joins", nil, hs{committer: eve, external: true, added: []event.UserURI{eve}}, ErrNotAllowed, "may not commit"},
		{"external commit changes the list", nil, hs{committer: bob, external: true, added: []event.UserURI{bob}, props: []mls.Proposal{plu(t, ParticipantListUpdate{Removed: []uint32{4}})}}, ErrNotAllowed, "room state"},
		{"external commit removes another's client", nil, hs{committer: bob, external: true, added: []event.UserURI{bob}, removed: []event.UserURI{frank}}, ErrNotAllowed, "touches"},
		// metadata
		{"admin renames", nil, hs{committer: carol, props: []mls.Proposal{metaP(t, Metadata{RoomURI: roomA, Name: "New"})}}, nil, ""},
		{"regular renames", nil, hs{committer: bob, props: []mls.Proposal{metaP(t, Metadata{RoomURI: roomA, Name: "New"})}}, ErrNotAllowed, "canChangeRoomName"},
		{"regular sets the subject", nil, hs{committer: bob, props: []mls.Proposal{metaP(t, Metadata{RoomURI: roomA, Name: "Club", Subject: "s"})}}, ErrNotAllowed, "canChangeRoomSubject"},
		{"regular writes unchanged metadata", nil, hs{committer: bob, props: []mls.Proposal{metaP(t, Metadata{RoomURI: roomA, Name: "Club"})}}, nil, ""},
		{"room URI changes", nil, hs{committer: alice, props: []mls.Proposal{metaP(t, Metadata{RoomURI: "mimi://a.example/r/other", Name: "Club"})}}, ErrNotAllowed, "room URI"},
		{"two metadata updates", nil, hs{committer: alice, props: []mls.Proposal{metaP(t, Metadata{RoomURI: roomA}), metaP(t, Metadata{RoomURI: roomA})}}, ErrInvalid, "room_metadata"},
		{"metadata component removed", nil, hs{committer: alice, props: []mls.Proposal{{Type: mls.ProposalTypeAppDataUpdate, AppDataUpdate: &mls.AppDataUpdate{Component: ComponentRoomMetadata, Op: mls.AppDataOpRemove}}}}, ErrInvalid, "removed"},
		// roles
		{"owner changes role definitions", nil, hs{committer: alice, props: []mls.Proposal{rolesP(newRoles)}}, nil, ""},
		{"admin changes role definitions", nil, hs{committer: carol, props: []mls.Proposal{rolesP(newRoles)}}, ErrNotAllowed, "canChangeRoleDefinitions"},
		{"roles drop a role in use", nil, hs{committer: alice, props: []mls.Proposal{rolesP(otherRoles)}}, ErrInvalid, "drops role 4"},
		// fixed membership (a 1:1): nobody joins the participants, and it stays fixed
		{"1:1: owner adds a user", direct, hs{committer: alice, props: []mls.Proposal{plu(t, ParticipantListUpdate{Added: []Participant{{eve, RoleRegular}}})}, added: []event.UserURI{eve}}, ErrFixedMembership, "eve cannot be added"},
		{"1:1: unban into the room", direct, hs{committer: carol, props: []mls.Proposal{plu(t, ParticipantListUpdate{Changed: []RoleChange{{3, RoleRegular}}})}}, ErrFixedMembership, "dave cannot be added"},
		{"1:1: a participant's new client", direct, hs{committer: bob, added: []event.UserURI{gina}}, nil, ""},
		{"1:1: a participant leaves", direct, hs{committer: frank, submitter: "b.example", props: []mls.Proposal{plu(t, ParticipantListUpdate{Removed: []uint32{1}})}, removed: []event.UserURI{bob}}, nil, ""},
		{"1:1: a stranger banned", direct, hs{committer: carol, props: []mls.Proposal{plu(t, ParticipantListUpdate{Added: []Participant{{eve, RoleBanned}}})}}, nil, ""},
		{"1:1: fixed membership lifted", direct, hs{committer: alice, props: []mls.Proposal{policyP(&BasePolicy{MultiDevice: true})}}, ErrFixedMembership, "lifts"},
		{"1:1: policy rewritten, still fixed", direct, hs{committer: alice, props: []mls.Proposal{policyP(&BasePolicy{FixedMembership: true})}}, nil, ""},
		{"fixed membership set with the adds", nil, hs{committer: alice, props: []mls.Proposal{policyP(DirectPolicy()), plu(t, ParticipantListUpdate{Added: []Participant{{eve, RoleRegular}}})}, added: []event.UserURI{eve}}, nil, ""},
		{"roles with participant changes", nil, hs{committer: alice, props: []mls.Proposal{rolesP(newRoles), plu(t, ParticipantListUpdate{Changed: []RoleChange{{1, RoleAdmin}}})}}, ErrInvalid, "together"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := testState()
			if c.state != nil {
				c.state(s)
			}
			after := clientsBefore()
			for _, u := range c.h.added {
				after[u]++
			}
			for _, u := range c.h.removed {
				after[u] = max(after[u], 1) - 1 // a removed client existed
			}
			h := &Handshake{Committer: c.h.committer, Submitter: c.h.submitter, External: c.h.external, Proposals: c.h.props,
				AddedClients: c.h.added, RemovedClients: c.h.removed, ClientsAfter: maps.Clone(after)}
			out, err := Authorize(s, h)
			if c.err == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if out.After == nil || out.After.Participants == nil {
					t.Fatal("no state after")
				}
				return
			}
			if !errors.Is(err, c.err) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %v mentioning %q", err, c.err, c.want)
			}
		})
	}
}

func TestAuthorizeOutcome(t *testing.T) {
	s := testState()
	h := &Handshake{Committer: carol, Proposals: []mls.Proposal{
		plu(t, ParticipantListUpdate{Changed: []RoleChange{{5, RoleAdmin}}, Removed: []uint32{1}, Added: []Participant{{eve, RoleRegular}}}),
		metaP(t, Metadata{RoomURI: roomA, Name: "Club", Subject: "news"}),
	}, AddedClients: []event.UserURI{eve}, RemovedClients: []event.UserURI{bob},
		ClientsAfter: map[event.UserURI]int{alice: 1, carol: 1, frank: 1, gina: 1, eve: 1}}
	out, err := Authorize(s, h)
	if err != nil {
		t.Fatal(err)
	}
	want := []Change{{User: gina, From: RoleRegular, To: RoleAdmin}, {User: bob, From: RoleRegular}, {User: eve, To: RoleRegular}}
	if len(out.Changes) != 3 || out.Changes[0] != want[0] || out.Changes[1] != want[1] || out.Changes[2] != want[2] {
		t.Fatalf("changes %+v", out.Changes)
	}
	if !out.MetadataChanged || out.After.Metadata.Subject != "news" || out.RolesChanged {
		t.Fatalf("outcome %+v", out)
	}
	if out.After.RoleOf(gina) != RoleAdmin || out.After.RoleOf(bob) != RoleNone || out.After.RoleOf(eve) != RoleRegular {
		t.Fatalf("state after %+v", out.After.Participants)
	}
	if s.RoleOf(bob) != RoleRegular {
		t.Fatal("Authorize changed the state before")
	}
	if _, err := Authorize(&State{Participants: s.Participants}, h); !errors.Is(err, ErrInvalid) {
		t.Fatalf("room without roles: %v", err)
	}
}

// TestDefaultRolesKeepThePolicy pins the capabilities the gateway's former fixed policy gave
// each role (regular: add and send; admin and owner: also remove, change roles, ban; banned and
// no_role: nothing) on DefaultRoles.
func TestDefaultRolesKeepThePolicy(t *testing.T) {
	all := []Capability{CanAddParticipant, CanRemoveParticipant, CanChangeUserRole, CanBan, CanSendMessage}
	cases := []struct {
		role RoleIndex
		can  []Capability
	}{
		{RoleNone, nil},
		{RoleBanned, nil},
		{RoleRegular, []Capability{CanAddParticipant, CanSendMessage}},
		{RoleAdmin, all},
		{RoleOwner, all},
	}
	rs := DefaultRoles()
	if err := rs.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		r, ok := rs.Role(c.role)
		if !ok {
			t.Fatalf("role %d not defined", c.role)
		}
		for _, cp := range all {
			if got, want := r.Has(cp), slices.Contains(c.can, cp); got != want {
				t.Errorf("role %d capability 0x%04x: %v, want %v", c.role, uint16(cp), got, want)
			}
		}
	}
}

// TestAuthorizeProposed covers removals and adds that pending proposals (authorized by the hub
// when it accepted them) bring into a commit made by a committer without the capability.
func TestAuthorizeProposed(t *testing.T) {
	leave := plu(t, ParticipantListUpdate{Removed: []uint32{1}})
	add := plu(t, ParticipantListUpdate{Added: []Participant{{eve, RoleRegular}}})
	addAdmin := plu(t, ParticipantListUpdate{Added: []Participant{{eve, RoleAdmin}}})
	after := func(m map[event.UserURI]int) map[event.UserURI]int {
		c := clientsBefore()
		maps.Copy(c, m)
		return c
	}
	cases := []struct {
		name string
		h    Handshake
		err  error
	}{
		{"SelfRemove of bob with his list removal", Handshake{Committer: gina, Proposals: []mls.Proposal{leave}, RemovedClients: []event.UserURI{bob},
			ClientsAfter: after(map[event.UserURI]int{bob: 0}), ProposedRemovals: map[event.UserURI]bool{bob: true}}, nil},
		{"SelfRemove of bob's client only", Handshake{Committer: gina, RemovedClients: []event.UserURI{bob},
			ClientsAfter: after(map[event.UserURI]int{bob: 0}), ProposedRemovals: map[event.UserURI]bool{bob: true}}, nil},
		{"without the proposal", Handshake{Committer: gina, Proposals: []mls.Proposal{leave}, RemovedClients: []event.UserURI{bob},
			ClientsAfter: after(map[event.UserURI]int{bob: 0})}, ErrNotAllowed},
		{"proposed removal with a client left", Handshake{Committer: gina, Proposals: []mls.Proposal{leave},
			ClientsAfter: after(nil), ProposedRemovals: map[event.UserURI]bool{bob: true}}, ErrNotAllowed},
		{"proposed Add with a regular list add", Handshake{Committer: carol, Proposals: []mls.Proposal{add}, AddedClients: []event.UserURI{eve},
			ClientsAfter: after(map[event.UserURI]int{eve: 1}), ProposedAdds: map[event.UserURI]bool{eve: true}}, nil},
		{"proposed Add as admin by a regular committer", Handshake{Committer: gina, Proposals: []mls.Proposal{addAdmin}, AddedClients: []event.UserURI{eve},
			ClientsAfter: after(map[event.UserURI]int{eve: 1}), ProposedAdds: map[event.UserURI]bool{eve: true}}, ErrNotAllowed},
		{"proposed Add without a list add", Handshake{Committer: gina, AddedClients: []event.UserURI{eve},
			ClientsAfter: after(map[event.UserURI]int{eve: 1}), ProposedAdds: map[event.UserURI]bool{eve: true}}, ErrNotAllowed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Authorize(testState(), &c.h)
			if (c.err == nil) != (err == nil) || (c.err != nil && !errors.Is(err, c.err)) {
				t.Fatalf("error %v, want %v", err, c.err)
			}
		})
	}
}
