package room

import (
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
)

// Handshake is one commit as the room policy sees it. The caller (the hub, or a member
// processing the commit) fills it from the MLS result: the users named by the credentials of
// the clients added and removed, and the number of clients each user has after the commit.
type Handshake struct {
	// Committer is the user of the committing client (for an external commit: the joiner).
	Committer event.UserURI
	// Submitter is the provider that submitted the commit. A provider speaks for its own users:
	// removing a user of this domain from the list, or one of their clients, is that user's own
	// act (canRemoveSelf, canRemoveOwnClient; docs/interop.md P2). Empty: no such reading.
	Submitter event.Domain
	// External is set for an external commit (the committer joins with a new client).
	External bool
	// Proposals are the commit's applied proposals in commit order (mls.CommitResult.Proposals);
	// only AppDataUpdates are read.
	Proposals []mls.Proposal
	// AddedClients names the user of each client added (for an external commit, include the
	// joiner); RemovedClients the user of each client removed.
	AddedClients, RemovedClients []event.UserURI
	// ClientsAfter counts each user's clients in the group after the commit.
	ClientsAfter map[event.UserURI]int
	// ProposedRemovals and ProposedAdds are the users whose clients pending proposals included
	// in the commit remove (SelfRemove, Remove) or add, which the hub authorized when it
	// accepted the proposals. Removing such a user's clients, and the list removal that goes
	// with the last one, are the proposer's act; so is a list add as RoleRegular for a proposed
	// Add (docs/interop.md P9 (j)).
	ProposedRemovals, ProposedAdds map[event.UserURI]bool
}

// Outcome is an authorized handshake's effect on the room state.
type Outcome struct {
	// After is the state after the commit.
	After *State
	// Changes are the participant-list changes in commit order.
	Changes []Change
	// MetadataChanged and RolesChanged say whether those components changed.
	MetadataChanged, RolesChanged bool
}

// Authorize checks one handshake against the room state before it (room-policy-03 §5.4 and the
// minimal enforcement of §5.5, protocol-06 §7.5) and returns its outcome. Errors wrap ErrInvalid
// (a malformed or inconsistent commit) or ErrNotAllowed (a change the committer's role does not
// authorize), each with what failed.
func Authorize(before *State, h *Handshake) (*Outcome, error) {
	if before.Roles == nil {
		return nil, fmt.Errorf("%w: the room has no roles_list", ErrInvalid)
	}
	var lists, metas, roleUpdates, policies [][]byte
	for _, p := range h.Proposals {
		if p.Type != mls.ProposalTypeAppDataUpdate || p.AppDataUpdate == nil {
			continue
		}
		u := p.AppDataUpdate
		var dst *[][]byte
		switch u.Component {
		case ComponentParticipantList:
			dst = &lists
		case ComponentRoomMetadata:
			dst = &metas
		case ComponentRolesList:
			dst = &roleUpdates
		case ComponentBaseRoomPolicy:
			dst = &policies
		default:
			continue
		}
		if u.Op != mls.AppDataOpUpdate {
			return nil, fmt.Errorf("%w: component 0x%04x removed", ErrInvalid, uint16(u.Component))
		}
		*dst = append(*dst, u.Update)
	}
	if len(metas) > 1 {
		return nil, fmt.Errorf("%w: %d room_metadata updates in one commit", ErrInvalid, len(metas))
	}
	if len(policies) > 1 {
		return nil, fmt.Errorf("%w: %d base_room_policy updates in one commit", ErrInvalid, len(policies))
	}
	if len(roleUpdates) > 0 && len(lists) > 0 {
		return nil, fmt.Errorf("%w: roles_list updated together with the participant list", ErrInvalid)
	}
	a := &authorizer{before: before, h: h, roles: before.Roles}
	a.committer = before.RoleOf(h.Committer)
	a.crole, _ = before.Roles.Role(a.committer)
	if a.crole == nil {
		a.crole = &RoleDef{Index: a.committer}
	}
	if a.committer == RoleNone || a.committer == RoleBanned {
		return nil, fmt.Errorf("%w: %s (role %d) may not commit", ErrNotAllowed, h.Committer, a.committer)
	}
	out := &Outcome{After: &State{Participants: before.Participants, Roles: before.Roles, Metadata: before.Metadata, Policy: before.Policy}}
	if h.External {
		if len(lists)+len(metas)+len(roleUpdates)+len(policies) > 0 {
			return nil, fmt.Errorf("%w: an external commit changes the room state", ErrNotAllowed)
		}
		if !a.crole.Has(CanAddOwnClient) {
			return nil, fmt.Errorf("%w: %s may not add its own client (canAddOwnClient)", ErrNotAllowed, h.Committer)
		}
		for _, u := range append(append([]event.UserURI(nil), h.AddedClients...), h.RemovedClients...) {
			if u != h.Committer {
				return nil, fmt.Errorf("%w: external commit of %s touches a client of %s", ErrNotAllowed, h.Committer, u)
			}
		}
	}
	list, changes, err := applyUpdates(before.Participants, lists)
	if err != nil {
		return nil, err
	}
	out.After.Participants, out.Changes = list, changes
	for _, c := range changes {
		if err := fixedMembership(before.Policy, c); err != nil {
			return nil, err
		}
		if err := a.change(c); err != nil {
			return nil, err
		}
	}
	if err := a.membership(list, changes); err != nil {
		return nil, err
	}
	if err := a.constraints(list, changes); err != nil {
		return nil, err
	}
	if len(metas) == 1 {
		m, err := a.metadata(metas[0])
		if err != nil {
			return nil, err
		}
		out.MetadataChanged = before.Metadata == nil || !before.Metadata.Equal(m)
		out.After.Metadata = m
	}
	if len(roleUpdates) > 0 {
		rs, err := a.rolesUpdate(roleUpdates[len(roleUpdates)-1])
		if err != nil {
			return nil, err
		}
		out.After.Roles, out.RolesChanged = rs, true
	}
	if len(policies) == 1 {
		// The base policy says how membership works (fixed for a 1:1): canChangeRoomMembershipStyle.
		if !a.crole.Has(CanChangeRoomMembershipStyle) {
			return nil, fmt.Errorf("%w: %s may not change the base room policy (canChangeRoomMembershipStyle)", ErrNotAllowed, h.Committer)
		}
		if out.After.Policy, err = DecodeBasePolicy(policies[0]); err != nil {
			return nil, err
		}
		if before.Policy.Direct() && !out.After.Policy.Direct() {
			return nil, fmt.Errorf("%w: %s lifts it", ErrFixedMembership, h.Committer)
		}
	}
	return out, nil
}

// fixedMembership refuses a change that makes someone a participant of a room whose base policy
// fixes its membership (room-policy-03 §5: "other users cannot be added"): from no entry, or
// from banned, to any other role. Leaving, removals and role changes of participants are not
// refused: a user erased by her provider, or one who leaves a 1:1, is removed from the list.
func fixedMembership(p *BasePolicy, c Change) error {
	if !p.Direct() || (c.From != RoleNone && c.From != RoleBanned) || c.To == RoleNone || c.To == RoleBanned {
		return nil
	}
	return fmt.Errorf("%w: %s cannot be added", ErrFixedMembership, c.User)
}

type authorizer struct {
	before    *State
	h         *Handshake
	roles     *Roles
	committer RoleIndex
	crole     *RoleDef
}

func (a *authorizer) roleDef(i RoleIndex) (*RoleDef, error) {
	r, ok := a.roles.Role(i)
	if !ok {
		return nil, fmt.Errorf("%w: role %d is not defined", ErrInvalid, i)
	}
	return r, nil
}

// need requires the committer's role to hold c and to allow from → to.
func (a *authorizer) need(c Capability, name string, from, to RoleIndex, target event.UserURI) error {
	if !a.crole.Has(c) {
		return fmt.Errorf("%w: %s (role %d) lacks %s for %s", ErrNotAllowed, a.h.Committer, a.committer, name, target)
	}
	if !a.crole.MayChange(from, to) {
		return fmt.Errorf("%w: role %d may not move %s from role %d to %d", ErrNotAllowed, a.committer, target, from, to)
	}
	return nil
}

// speaksFor reports whether the submitting provider speaks for u (reading P2).
func (a *authorizer) speaksFor(u event.UserURI) bool {
	return a.h.Submitter != "" && u.Domain() == a.h.Submitter
}

// change authorizes one participant-list change (room-policy-03 §5.4).
func (a *authorizer) change(c Change) error {
	if c.To != RoleNone {
		if _, err := a.roleDef(c.To); err != nil {
			return err
		}
	}
	switch {
	case c.To == RoleNone && a.h.ProposedRemovals[c.User]:
		return nil // completes a removal authorized as a proposal (clients checked in membership)
	case c.From == RoleNone && c.To == RoleRegular && a.h.ProposedAdds[c.User]:
		return nil
	case c.From == RoleNone && c.To == RoleBanned: // a ban of someone not listed
		if err := a.banRole(); err != nil {
			return err
		}
		return a.need(CanBan, "canBan", c.From, c.To, c.User)
	case c.From == RoleNone:
		if c.User == a.h.Committer {
			return fmt.Errorf("%w: %s adds itself", ErrNotAllowed, c.User)
		}
		return a.need(CanAddParticipant, "canAddParticipant", c.From, c.To, c.User)
	case c.To == RoleNone:
		if c.User != a.h.Committer && a.crole.Has(CanRemoveParticipant) && a.crole.MayChange(c.From, c.To) {
			return nil
		}
		if c.User == a.h.Committer || a.speaksFor(c.User) {
			// The user leaves: its own role must allow it (canRemoveSelf, from → 0).
			own, ok := a.roles.Role(c.From)
			if ok && own.Has(CanRemoveSelf) && own.MayChange(c.From, RoleNone) {
				return nil
			}
			return fmt.Errorf("%w: %s (role %d) may not leave", ErrNotAllowed, c.User, c.From)
		}
		return a.need(CanRemoveParticipant, "canRemoveParticipant", c.From, c.To, c.User)
	case c.User == a.h.Committer:
		return fmt.Errorf("%w: %s changes its own role (canChangeOwnRole needs preauthorization, not supported)", ErrNotAllowed, c.User)
	case c.To == RoleBanned:
		if err := a.banRole(); err != nil {
			return err
		}
		return a.need(CanBan, "canBan", c.From, c.To, c.User)
	case c.From == RoleBanned:
		return a.need(CanUnBan, "canUnBan", c.From, c.To, c.User)
	default:
		return a.need(CanChangeUserRole, "canChangeUserRole", c.From, c.To, c.User)
	}
}

// banRole requires role 1 to be the ban role ("banned").
func (a *authorizer) banRole() error {
	r, ok := a.roles.Role(RoleBanned)
	if !ok || r.Name != BannedRoleName {
		return fmt.Errorf("%w: the room has no role 1 named %q", ErrNotAllowed, BannedRoleName)
	}
	return nil
}

// membership keeps the MLS membership consistent with the list (room-policy-03 §5.5 item 4).
func (a *authorizer) membership(after *ParticipantList, changes []Change) error {
	changed := map[event.UserURI]Change{}
	for _, c := range changes {
		changed[c.User] = c
	}
	for _, c := range changes {
		if (c.To == RoleNone || c.To == RoleBanned) && a.h.ClientsAfter[c.User] > 0 {
			return fmt.Errorf("%w: %s removed or banned but %d client(s) remain", ErrNotAllowed, c.User, a.h.ClientsAfter[c.User])
		}
	}
	for u, n := range a.h.ClientsAfter {
		if n == 0 {
			continue
		}
		if r := after.RoleOf(u); r == RoleNone || r == RoleBanned {
			return fmt.Errorf("%w: %s has %d client(s) but is not an active participant (role %d)", ErrNotAllowed, u, n, r)
		}
	}
	for _, u := range a.h.AddedClients {
		if c, ok := changed[u]; (ok && c.From == RoleNone) || a.h.ProposedAdds[u] {
			continue // added to the list in this commit (canAddParticipant), or proposed
		}
		switch {
		case u == a.h.Committer:
			if !a.crole.Has(CanAddOwnClient) {
				return fmt.Errorf("%w: %s may not add its own client (canAddOwnClient)", ErrNotAllowed, u)
			}
		case !a.crole.Has(CanAddParticipant):
			return fmt.Errorf("%w: %s may not add a client of %s", ErrNotAllowed, a.h.Committer, u)
		}
	}
	for _, u := range a.h.RemovedClients {
		if _, ok := changed[u]; ok || a.h.ProposedRemovals[u] {
			continue // removed or banned in this commit (checked above), or proposed
		}
		r := a.before.RoleOf(u)
		if r == RoleNone || r == RoleBanned {
			continue // a client that had no business in the group
		}
		own, _ := a.roles.Role(r)
		switch {
		case (u == a.h.Committer || a.speaksFor(u)) && own != nil && own.Has(CanRemoveOwnClient):
		case a.crole.Has(CanKick):
		default:
			return fmt.Errorf("%w: %s may not remove a client of %s (canKick)", ErrNotAllowed, a.h.Committer, u)
		}
	}
	return nil
}

// constraints checks the min/max constraints of the roles that lost (minimums) or gained
// (maximums) participants or active participants in this commit.
func (a *authorizer) constraints(after *ParticipantList, changes []Change) error {
	total := map[RoleIndex]uint32{}
	active := map[RoleIndex]uint32{}
	for _, p := range after.Participants {
		total[p.Role]++
		if a.h.ClientsAfter[p.User] > 0 {
			active[p.Role]++
		}
	}
	lost, gained := map[RoleIndex]bool{}, map[RoleIndex]bool{}
	for _, c := range changes {
		lost[c.From], gained[c.To] = true, true
	}
	for _, u := range a.h.AddedClients {
		gained[after.RoleOf(u)] = true
	}
	for _, u := range a.h.RemovedClients {
		lost[a.before.RoleOf(u)] = true
	}
	delete(lost, RoleNone)
	delete(gained, RoleNone)
	for i := range lost {
		r, err := a.roleDef(i)
		if err != nil {
			continue // an undefined role in the old list cannot constrain
		}
		if total[i] < r.MinParticipants || active[i] < r.MinActive {
			return fmt.Errorf("%w: role %d below its minimum (%d participants, %d active)", ErrNotAllowed, i, total[i], active[i])
		}
	}
	for i := range gained {
		r, err := a.roleDef(i)
		if err != nil {
			return err
		}
		if (r.MaxParticipants != nil && total[i] > *r.MaxParticipants) || (r.MaxActive != nil && active[i] > *r.MaxActive) {
			return fmt.Errorf("%w: role %d above its maximum (%d participants, %d active)", ErrNotAllowed, i, total[i], active[i])
		}
	}
	return nil
}

// metadata authorizes a room_metadata update field by field (canChangeRoom*).
func (a *authorizer) metadata(b []byte) (*Metadata, error) {
	m, err := DecodeMetadata(b)
	if err != nil {
		return nil, err
	}
	old := a.before.Metadata
	if old == nil {
		old = &Metadata{}
	}
	if m.RoomURI != old.RoomURI && old.RoomURI != "" {
		return nil, fmt.Errorf("%w: the room URI cannot change", ErrNotAllowed)
	}
	for _, f := range []struct {
		changed bool
		c       Capability
		name    string
	}{
		{m.Name != old.Name, CanChangeRoomName, "canChangeRoomName"},
		{!descriptionsEqual(m.Descriptions, old.Descriptions), CanChangeRoomDescription, "canChangeRoomDescription"},
		{m.Avatar != old.Avatar, CanChangeRoomAvatar, "canChangeRoomAvatar"},
		{m.Subject != old.Subject, CanChangeRoomSubject, "canChangeRoomSubject"},
		{m.Mood != old.Mood, CanChangeRoomMood, "canChangeRoomMood"},
	} {
		if f.changed && !a.crole.Has(f.c) {
			return nil, fmt.Errorf("%w: %s (role %d) lacks %s", ErrNotAllowed, a.h.Committer, a.committer, f.name)
		}
	}
	return m, nil
}

// rolesUpdate authorizes a roles_list update (canChangeRoleDefinitions); every role in use must
// stay defined.
func (a *authorizer) rolesUpdate(b []byte) (*Roles, error) {
	rs, err := DecodeRoles(b)
	if err != nil {
		return nil, err
	}
	if !a.crole.Has(CanChangeRoleDefinitions) {
		return nil, fmt.Errorf("%w: %s (role %d) lacks canChangeRoleDefinitions", ErrNotAllowed, a.h.Committer, a.committer)
	}
	for _, p := range a.before.Participants.Participants {
		if _, ok := rs.Role(p.Role); !ok {
			return nil, fmt.Errorf("%w: new roles_list drops role %d of %s", ErrInvalid, p.Role, p.User)
		}
	}
	return rs, nil
}
