package room

import (
	"fmt"
	"slices"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

// ComponentBaseRoomPolicy is base_room_policy: BaseRoomPolicy (room-policy-03 §6), replaced by
// each update.
const ComponentBaseRoomPolicy mls.ComponentID = 0x0027

// MaxPolicyComponents bounds policy_component_ids.
const MaxPolicyComponents = 64

// BasePolicy is BaseRoomPolicy, the value of the base_room_policy component
// (draft-ietf-mimi-room-policy-03 §5.3). The gateway writes it for 1:1 rooms (FixedMembership,
// see Direct), and Authorize enforces FixedMembership: nobody is added once it is set, and it is
// not lifted. parent_room is one Uri (the draft's "<V>" on it is a drafting bug).
type BasePolicy struct {
	// FixedMembership: the participants are fixed (1:1 chats and group DMs).
	FixedMembership bool
	// ParentDependent (parent_dependant): participants are a subset of ParentRoom's.
	ParentDependent bool
	// ParentRoom is parent_room, a room URI or empty.
	ParentRoom event.RoomURI
	// MultiDevice: users may have more than one client (the draft's default is true).
	MultiDevice bool
	// MaxClients and MaxUsers are the optional limits (nil: absent).
	MaxClients, MaxUsers *uint32
	// PseudonymsAllowed, PersistentRoom and Discoverable are the flags of the same names.
	PseudonymsAllowed, PersistentRoom, Discoverable bool
	// PolicyComponents are policy_component_ids: the other policy components in force.
	PolicyComponents []mls.ComponentID
}

// DirectPolicy is the base policy of a 1:1 room the gateway creates: fixed membership, several
// devices per user, persistent, not discoverable.
func DirectPolicy() *BasePolicy {
	return &BasePolicy{FixedMembership: true, MultiDevice: true, PersistentRoom: true}
}

// Direct reports whether p marks a 1:1 (or fixed group) conversation. A nil policy is not.
func (p *BasePolicy) Direct() bool { return p != nil && p.FixedMembership }

// Encode returns the TLS-PL encoding of BaseRoomPolicy.
func (p *BasePolicy) Encode() ([]byte, error) {
	var w tlspl.Writer
	w.Bool(p.FixedMembership)
	w.Bool(p.ParentDependent)
	w.Opaque([]byte(p.ParentRoom))
	w.Bool(p.MultiDevice)
	writeOptionalUint32(&w, p.MaxClients)
	writeOptionalUint32(&w, p.MaxUsers)
	w.Bool(p.PseudonymsAllowed)
	w.Bool(p.PersistentRoom)
	w.Bool(p.Discoverable)
	w.Vector(func(w *tlspl.Writer) {
		for _, c := range p.PolicyComponents {
			w.Uint16(uint16(c))
		}
	})
	return w.Bytes()
}

// DecodeBasePolicy decodes and validates BaseRoomPolicy: a valid parent room URI (or none),
// at most MaxPolicyComponents distinct component IDs.
func DecodeBasePolicy(b []byte) (*BasePolicy, error) {
	r := tlspl.NewReader(b)
	p := &BasePolicy{}
	p.FixedMembership = r.Bool()
	p.ParentDependent = r.Bool()
	p.ParentRoom = event.RoomURI(readText(r, "parent room URI", MaxURI))
	p.MultiDevice = r.Bool()
	p.MaxClients = readOptionalUint32(r)
	p.MaxUsers = readOptionalUint32(r)
	p.PseudonymsAllowed = r.Bool()
	p.PersistentRoom = r.Bool()
	p.Discoverable = r.Bool()
	r.ForEach(func(r *tlspl.Reader) {
		if len(p.PolicyComponents) >= MaxPolicyComponents {
			r.SetError(fmt.Errorf("more than %d policy components", MaxPolicyComponents))
			return
		}
		c := mls.ComponentID(r.Uint16())
		if slices.Contains(p.PolicyComponents, c) {
			r.SetError(fmt.Errorf("policy component %#04x listed twice", uint16(c)))
			return
		}
		p.PolicyComponents = append(p.PolicyComponents, c)
	})
	if err := r.Finish(); err != nil {
		return nil, fmt.Errorf("%w: base room policy: %w", ErrInvalid, err)
	}
	if p.ParentRoom != "" {
		u, err := event.ParseRoomURI(string(p.ParentRoom))
		if err != nil || u != p.ParentRoom {
			return nil, fmt.Errorf("%w: base room policy: parent room %q: %v", ErrInvalid, p.ParentRoom, err)
		}
	}
	return p, nil
}

// Proposal returns the AppDataUpdate proposal that sets the base room policy to p.
func (p *BasePolicy) Proposal() (mls.Proposal, error) {
	b, err := p.Encode()
	if err != nil {
		return mls.Proposal{}, err
	}
	return appDataProposal(ComponentBaseRoomPolicy, b), nil
}
