package room

import (
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
)

// State is a room's state as read from its GroupContext's app_data_dictionary.
type State struct {
	// Participants is the participant list (empty when the component is absent).
	Participants *ParticipantList
	// Roles is the role list, nil when the component is absent.
	Roles *Roles
	// Metadata is the room metadata, nil when the component is absent.
	Metadata *Metadata
	// Policy is the base room policy, nil when the component is absent.
	Policy *BasePolicy
}

// NewState is the state of a room we create: creator as owner, the default roles, and the
// room's URI as its only metadata.
func NewState(r event.RoomURI, creator event.UserURI) *State {
	return &State{
		Participants: &ParticipantList{Participants: []Participant{{User: creator, Role: RoleOwner}}},
		Roles:        DefaultRoles(),
		Metadata:     &Metadata{RoomURI: r},
	}
}

// StateOf decodes the room state components of d.
func StateOf(d mls.AppDataDictionary) (*State, error) {
	s := &State{Participants: &ParticipantList{}}
	var err error
	if b, ok := d.Get(ComponentParticipantList); ok {
		if s.Participants, err = DecodeParticipantList(b); err != nil {
			return nil, err
		}
	}
	if b, ok := d.Get(ComponentRolesList); ok {
		if s.Roles, err = DecodeRoles(b); err != nil {
			return nil, err
		}
	}
	if b, ok := d.Get(ComponentRoomMetadata); ok {
		if s.Metadata, err = DecodeMetadata(b); err != nil {
			return nil, err
		}
	}
	if b, ok := d.Get(ComponentBaseRoomPolicy); ok {
		if s.Policy, err = DecodeBasePolicy(b); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// StateOfGroup decodes the room state of g's GroupContext.
func StateOfGroup(g *mls.Group) (*State, error) {
	d, err := g.AppData()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return StateOf(d)
}

// Put returns d with s's components set (absent parts are left as they are in d).
func (s *State) Put(d mls.AppDataDictionary) (mls.AppDataDictionary, error) {
	if s.Participants != nil {
		b, err := s.Participants.Encode()
		if err != nil {
			return nil, err
		}
		d = d.Set(ComponentParticipantList, b)
	}
	if s.Roles != nil {
		b, err := s.Roles.Encode()
		if err != nil {
			return nil, err
		}
		d = d.Set(ComponentRolesList, b)
	}
	if s.Metadata != nil {
		b, err := s.Metadata.Encode()
		if err != nil {
			return nil, err
		}
		d = d.Set(ComponentRoomMetadata, b)
	}
	if s.Policy != nil {
		b, err := s.Policy.Encode()
		if err != nil {
			return nil, err
		}
		d = d.Set(ComponentBaseRoomPolicy, b)
	}
	return d, nil
}

// RoleOf returns u's role (RoleNone when not listed).
func (s *State) RoleOf(u event.UserURI) RoleIndex { return s.Participants.RoleOf(u) }

// Can reports whether u's role holds capability c.
func (s *State) Can(u event.UserURI, c Capability) bool {
	if s.Roles == nil {
		return false
	}
	r, ok := s.Roles.Role(s.RoleOf(u))
	return ok && r.Has(c)
}

// Proposal returns the AppDataUpdate proposal that applies u to the participant list.
func (u *ParticipantListUpdate) Proposal() (mls.Proposal, error) {
	b, err := u.Encode()
	if err != nil {
		return mls.Proposal{}, err
	}
	return appDataProposal(ComponentParticipantList, b), nil
}

// Proposal returns the AppDataUpdate proposal that replaces the room metadata with m.
func (m *Metadata) Proposal() (mls.Proposal, error) {
	b, err := m.Encode()
	if err != nil {
		return mls.Proposal{}, err
	}
	return appDataProposal(ComponentRoomMetadata, b), nil
}

// Proposal returns the AppDataUpdate proposal that replaces the role list with rs.
func (rs *Roles) Proposal() (mls.Proposal, error) {
	b, err := rs.Encode()
	if err != nil {
		return mls.Proposal{}, err
	}
	return appDataProposal(ComponentRolesList, b), nil
}

func appDataProposal(id mls.ComponentID, b []byte) mls.Proposal {
	return mls.Proposal{Type: mls.ProposalTypeAppDataUpdate,
		AppDataUpdate: &mls.AppDataUpdate{Component: id, Op: mls.AppDataOpUpdate, Update: b}}
}
