package room

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
)

func users(ps ...Participant) *ParticipantList { return &ParticipantList{Participants: ps} }

// TestApply pins the order of ParticipantListUpdate operations (docs/interop.md P6): changes by
// index, removals by pre-update index, adds appended.
func TestApply(t *testing.T) {
	base := users(Participant{alice, RoleOwner}, Participant{bob, RoleRegular}, Participant{carol, RoleRegular})
	cases := []struct {
		name string
		upd  ParticipantListUpdate
		want *ParticipantList
		err  string
	}{
		{"nothing", ParticipantListUpdate{}, base, ""},
		{"change", ParticipantListUpdate{Changed: []RoleChange{{1, RoleAdmin}}},
			users(Participant{alice, RoleOwner}, Participant{bob, RoleAdmin}, Participant{carol, RoleRegular}), ""},
		{"removals use pre-update indices", ParticipantListUpdate{Removed: []uint32{0, 1}},
			users(Participant{carol, RoleRegular}), ""},
		{"removals in any order", ParticipantListUpdate{Removed: []uint32{2, 0}},
			users(Participant{bob, RoleRegular}), ""},
		{"change index is pre-removal", ParticipantListUpdate{Changed: []RoleChange{{2, RoleBanned}}, Removed: []uint32{0}},
			users(Participant{bob, RoleRegular}, Participant{carol, RoleBanned}), ""},
		{"adds appended after removals", ParticipantListUpdate{Removed: []uint32{1}, Added: []Participant{{dave, RoleRegular}}},
			users(Participant{alice, RoleOwner}, Participant{carol, RoleRegular}, Participant{dave, RoleRegular}), ""},
		{"all three", ParticipantListUpdate{Changed: []RoleChange{{0, RoleAdmin}}, Removed: []uint32{2}, Added: []Participant{{dave, RoleBanned}}},
			users(Participant{alice, RoleAdmin}, Participant{bob, RoleRegular}, Participant{dave, RoleBanned}), ""},
		{"change out of range", ParticipantListUpdate{Changed: []RoleChange{{3, RoleAdmin}}}, nil, "index 3"},
		{"removal out of range", ParticipantListUpdate{Removed: []uint32{1 << 31}}, nil, "index"},
		{"changed twice", ParticipantListUpdate{Changed: []RoleChange{{1, RoleAdmin}, {1, RoleOwner}}}, nil, "twice"},
		{"removed twice", ParticipantListUpdate{Removed: []uint32{1, 1}}, nil, "twice"},
		{"changed and removed", ParticipantListUpdate{Changed: []RoleChange{{1, RoleAdmin}}, Removed: []uint32{1}}, nil, "twice"},
		{"change to role 0", ParticipantListUpdate{Changed: []RoleChange{{1, RoleNone}}}, nil, "role 0"},
		{"add listed user", ParticipantListUpdate{Added: []Participant{{bob, RoleRegular}}}, nil, "listed"},
		{"removed and re-added", ParticipantListUpdate{Removed: []uint32{1}, Added: []Participant{{bob, RoleAdmin}}}, nil, "listed"},
		{"added twice", ParticipantListUpdate{Added: []Participant{{dave, RoleRegular}, {dave, RoleAdmin}}}, nil, "twice"},
		{"added with role 0", ParticipantListUpdate{Added: []Participant{{dave, RoleNone}}}, nil, "role 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before, _ := base.Encode()
			got, err := base.Apply(&c.upd)
			if after, _ := base.Encode(); string(after) != string(before) {
				t.Fatal("Apply changed its receiver")
			}
			if c.err != "" {
				if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("error %v, want ErrInvalid mentioning %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Participants, c.want.Participants) {
				t.Fatalf("got %v, want %v", got.Participants, c.want.Participants)
			}
		})
	}
}

func enc(t testing.TB, v interface{ Encode() ([]byte, error) }) []byte {
	t.Helper()
	b, err := v.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUpdater(t *testing.T) {
	base := users(Participant{alice, RoleOwner}, Participant{bob, RoleRegular})
	var up Updater
	// Two deltas in one commit apply in order; the second sees the first's list.
	got, err := up.ApplyAppData(ComponentParticipantList, enc(t, base), true, [][]byte{
		enc(t, &ParticipantListUpdate{Added: []Participant{{carol, RoleRegular}}}),
		enc(t, &ParticipantListUpdate{Changed: []RoleChange{{2, RoleAdmin}}}),
	})
	if err == nil || !strings.Contains(err.Error(), "touched twice") {
		t.Fatalf("carol added and changed in one commit: %v", err)
	}
	got, err = up.ApplyAppData(ComponentParticipantList, enc(t, base), true, [][]byte{
		enc(t, &ParticipantListUpdate{Added: []Participant{{carol, RoleRegular}}}),
		enc(t, &ParticipantListUpdate{Removed: []uint32{1}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := DecodeParticipantList(got)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Participant{{alice, RoleOwner}, {carol, RoleRegular}}; !reflect.DeepEqual(l.Participants, want) {
		t.Fatalf("got %v", l.Participants)
	}
	// Absent list: the update applies to the empty list.
	if got, err = up.ApplyAppData(ComponentParticipantList, nil, false, [][]byte{enc(t, &ParticipantListUpdate{Added: []Participant{{alice, RoleOwner}}})}); err != nil {
		t.Fatal(err)
	}
	if _, err := up.ApplyAppData(ComponentParticipantList, []byte{1}, true, [][]byte{enc(t, &ParticipantListUpdate{})}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("corrupt current list: %v", err)
	}
	// Metadata: replaced, at most one per commit, validated.
	m := enc(t, &Metadata{RoomURI: roomA, Name: "n"})
	if got, err = up.ApplyAppData(ComponentRoomMetadata, nil, false, [][]byte{m}); err != nil || string(got) != string(m) {
		t.Fatalf("metadata: %v", err)
	}
	if _, err = up.ApplyAppData(ComponentRoomMetadata, nil, false, [][]byte{m, m}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("two metadata updates: %v", err)
	}
	if _, err = up.ApplyAppData(ComponentRoomMetadata, nil, false, [][]byte{{0xff}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad metadata: %v", err)
	}
	// Roles: replaced (last wins), validated.
	r := enc(t, DefaultRoles())
	if got, err = up.ApplyAppData(ComponentRolesList, []byte{0}, true, [][]byte{{0}, r}); err != nil || string(got) != string(r) {
		t.Fatalf("roles: %v", err)
	}
	if _, err = up.ApplyAppData(ComponentRolesList, nil, false, [][]byte{{1}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad roles: %v", err)
	}
	// Unknown component: the last update replaces.
	if got, err = up.ApplyAppData(0x8001, []byte("x"), true, [][]byte{[]byte("a"), []byte("b")}); err != nil || string(got) != "b" {
		t.Fatalf("unknown component: %q %v", got, err)
	}
}

// TestUpdaterInMLS runs the Updater inside a real MLS commit: the committer and a member who
// processes the commit compute the same participant list in their GroupContext.
func TestUpdaterInMLS(t *testing.T) {
	cs := mls.MLS128DHKEMX25519AES128GCMSHA256Ed25519
	sa, _ := mls.GenerateSigner(cs)
	sb, _ := mls.GenerateSigner(cs)
	st := NewState(roomA, alice)
	dict, err := st.Put(nil)
	if err != nil {
		t.Fatal(err)
	}
	ext, err := dict.Extension()
	if err != nil {
		t.Fatal(err)
	}
	ga, err := mls.CreateGroup([]byte("g"), sa, mls.Credential{Type: mls.CredentialTypeBasic, Identity: []byte(alice)}, mls.GroupOptions{Extensions: mls.Extensions{ext}})
	if err != nil {
		t.Fatal(err)
	}
	kp, priv, err := mls.NewKeyPackage(sb, mls.Credential{Type: mls.CredentialTypeBasic, Identity: []byte(bob)}, mls.KeyPackageOptions{})
	if err != nil {
		t.Fatal(err)
	}
	add, _ := (&ParticipantListUpdate{Added: []Participant{{bob, RoleRegular}}}).Proposal()
	pc, err := ga.Commit(mls.CommitOptions{Add: []*mls.KeyPackage{kp}, Proposals: []mls.Proposal{add}, AppData: Updater{}})
	if err != nil {
		t.Fatal(err)
	}
	gi, err := pc.GroupInfo()
	if err != nil {
		t.Fatal(err)
	}
	tree, _ := gi.GroupInfo.Extensions.Find(mls.ExtensionRatchetTree)
	rt, _ := mls.DecodeRatchetTree(tree)
	gb, err := mls.JoinFromWelcome(pc.Welcome.Welcome, kp, priv, sb, mls.JoinOptions{RatchetTree: rt})
	if err != nil {
		t.Fatal(err)
	}
	ga, err = pc.Confirm()
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []*mls.Group{ga, gb} {
		s, err := StateOfGroup(g)
		if err != nil {
			t.Fatal(err)
		}
		if s.RoleOf(bob) != RoleRegular || s.RoleOf(alice) != RoleOwner || s.Metadata.RoomURI != roomA {
			t.Fatalf("state %+v", s.Participants)
		}
	}
	// A role change committed by alice, processed by bob with the Updater.
	ch, _ := (&ParticipantListUpdate{Changed: []RoleChange{{1, RoleAdmin}}}).Proposal()
	pc2, err := ga.Commit(mls.CommitOptions{Proposals: []mls.Proposal{ch}, AppData: Updater{}})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := gb.Process(pc2.Commit, mls.ProcessOptions{AppData: Updater{}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := StateOfGroup(rec.Commit.State)
	if err != nil || s.RoleOf(bob) != RoleAdmin {
		t.Fatalf("bob's role after the change: %d (%v)", s.RoleOf(bob), err)
	}
	before, _ := StateOfGroup(gb)
	out, err := Authorize(before, &Handshake{Committer: alice, Proposals: rec.Commit.Proposals,
		ClientsAfter: map[event.UserURI]int{alice: 1, bob: 1}})
	if err != nil || len(out.Changes) != 1 || out.Changes[0] != (Change{User: bob, From: RoleRegular, To: RoleAdmin}) {
		t.Fatalf("authorize: %+v %v", out, err)
	}
	// An invalid delta (index out of range) makes the commit fail at the committer.
	bad, _ := (&ParticipantListUpdate{Removed: []uint32{5}}).Proposal()
	if _, err := ga.Commit(mls.CommitOptions{Proposals: []mls.Proposal{bad}, AppData: Updater{}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad delta: %v", err)
	}
}
