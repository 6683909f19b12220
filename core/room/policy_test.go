package room

import (
	"bytes"
	"errors"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
)

// TestBasePolicyWire pins the encoding of the 1:1 policy against the BaseRoomPolicy struct text:
// fixed_membership, parent_dependant, parent_room (empty Uri), multi_device, two absent optionals,
// pseudonyms_allowed, persistent_room, discoverable, an empty policy_component_ids.
func TestBasePolicyWire(t *testing.T) {
	b, err := DirectPolicy().Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{1, 0, 0, 1, 0, 0, 0, 1, 0, 0}
	if !bytes.Equal(b, want) {
		t.Fatalf("encoding %x, want %x", b, want)
	}
}

func TestDecodeBasePolicyInvalid(t *testing.T) {
	valid, err := DirectPolicy().Encode()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"truncated", valid[:len(valid)-1]},
		{"trailing", append(bytes.Clone(valid), 0)},
		{"bool 2", append([]byte{2}, valid[1:]...)},
		{"parent not a room URI", enc(t, &BasePolicy{ParentRoom: "https://a.example/r/x"})},
		{"component twice", enc(t, &BasePolicy{PolicyComponents: []mls.ComponentID{0x002E, 0x002E}})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if p, err := DecodeBasePolicy(tc.b); !errors.Is(err, ErrInvalid) {
				t.Fatalf("DecodeBasePolicy = %+v, %v; want ErrInvalid", p, err)
			}
		})
	}
	many := &BasePolicy{}
	for i := range MaxPolicyComponents + 1 {
		many.PolicyComponents = append(many.PolicyComponents, mls.ComponentID(i))
	}
	if _, err := DecodeBasePolicy(enc(t, many)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("%d policy components: %v, want ErrInvalid", len(many.PolicyComponents), err)
	}
}

// TestStatePolicy: a room state with the 1:1 policy survives Put and StateOf, and the Updater
// replaces it with a valid update and refuses an invalid one.
func TestStatePolicy(t *testing.T) {
	s := NewState(roomA, alice)
	if s.Policy.Direct() {
		t.Fatal("a new room is 1:1 without a policy")
	}
	s.Policy = DirectPolicy()
	d, err := s.Put(mls.AppDataDictionary{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := StateOf(d)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Policy.Direct() {
		t.Fatalf("decoded policy %+v is not 1:1", got.Policy)
	}
	cur, _ := d.Get(ComponentBaseRoomPolicy)
	open := enc(t, &BasePolicy{MultiDevice: true})
	next, err := Updater{}.ApplyAppData(ComponentBaseRoomPolicy, cur, true, [][]byte{open})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := DecodeBasePolicy(next); err != nil || p.Direct() {
		t.Fatalf("after update: %+v, %v; want an open policy", p, err)
	}
	if _, err := (Updater{}).ApplyAppData(ComponentBaseRoomPolicy, cur, true, [][]byte{{9}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid update: %v, want ErrInvalid", err)
	}
	prop, err := DirectPolicy().Proposal()
	if err != nil || prop.AppDataUpdate == nil || prop.AppDataUpdate.Component != ComponentBaseRoomPolicy {
		t.Fatalf("Proposal = %+v, %v", prop, err)
	}
}

// TestAuthorizePolicy: the owner (canChangeRoomMembershipStyle) sets the 1:1 policy together with
// the peer's Add; a regular member may not; two updates in one commit and an invalid one are
// refused; the state before keeps its policy.
func TestAuthorizePolicy(t *testing.T) {
	direct := func(t *testing.T) mls.Proposal {
		p, err := DirectPolicy().Proposal()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	s := &State{Participants: users(Participant{alice, RoleOwner}), Roles: DefaultRoles(), Metadata: &Metadata{RoomURI: roomA}}
	add := plu(t, ParticipantListUpdate{Added: []Participant{{bob, RoleRegular}}})
	h := &Handshake{Committer: alice, Proposals: []mls.Proposal{add, direct(t)}, AddedClients: []event.UserURI{bob},
		ClientsAfter: map[event.UserURI]int{alice: 1, bob: 1}}
	out, err := Authorize(s, h)
	if err != nil {
		t.Fatal(err)
	}
	if !out.After.Policy.Direct() || s.Policy != nil || out.After.RoleOf(bob) != RoleRegular {
		t.Fatalf("after %+v (policy %+v), before's policy %+v", out.After, out.After.Policy, s.Policy)
	}
	// The policy stays in later commits that do not touch it.
	out2, err := Authorize(out.After, &Handshake{Committer: bob, ClientsAfter: map[event.UserURI]int{alice: 1, bob: 1}})
	if err != nil || !out2.After.Policy.Direct() {
		t.Fatalf("later commit: %+v, %v", out2, err)
	}
	for _, tc := range []struct {
		name      string
		committer event.UserURI
		props     []mls.Proposal
		want      error
	}{
		{"regular member", bob, []mls.Proposal{direct(t)}, ErrNotAllowed},
		{"two updates", alice, []mls.Proposal{direct(t), direct(t)}, ErrInvalid},
		{"invalid update", alice, []mls.Proposal{appDataProposal(ComponentBaseRoomPolicy, []byte{7})}, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Authorize(out.After, &Handshake{Committer: tc.committer, Proposals: tc.props, ClientsAfter: map[event.UserURI]int{alice: 1, bob: 1}})
			if !errors.Is(err, tc.want) {
				t.Fatalf("Authorize = %v, want %v", err, tc.want)
			}
		})
	}
}
