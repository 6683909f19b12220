package mls

import (
	"bytes"
	"errors"
	"testing"
)

// TestJoinFromWelcomeMany joins three of four new members from one Welcome at once: they agree
// with the committer and the fourth (joined alone), share one validated tree, and a KeyPackage
// the Welcome is not for fails the call.
func TestJoinFromWelcomeMany(t *testing.T) {
	t.Parallel()
	alice := newGoClient(t, 1, "alice")
	var err error
	if alice.g, err = CreateGroup([]byte("group"), alice.signer, alice.cred(), GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	var joiners []*goClient
	var kps []*KeyPackage
	for _, n := range []string{"b", "c", "d", "e"} {
		c := newGoClient(t, 1, n)
		joiners = append(joiners, c)
		kps = append(kps, c.kp)
	}
	pc, err := alice.g.Commit(CommitOptions{Add: kps})
	if err != nil {
		t.Fatal(err)
	}
	if alice.g, err = pc.Confirm(); err != nil {
		t.Fatal(err)
	}
	w := reencode(t, pc.Welcome).Welcome
	var js []Joiner
	for _, c := range joiners[:3] {
		js = append(js, Joiner{KeyPackage: c.kp, Private: c.kpPriv, Signer: c.signer})
	}
	gs, err := JoinFromWelcomeMany(w, js, JoinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	alone, err := JoinFromWelcome(w, joiners[3].kp, joiners[3].kpPriv, joiners[3].signer, JoinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sameEpoch(t, append([]*Group{alice.g, alone}, gs...)...)
	for i, g := range gs {
		if g.tree != gs[0].tree {
			t.Fatalf("joiner %d has its own tree", i)
		}
		if g.LeafIndex() != LeafIndex(i+1) {
			t.Fatalf("joiner %d at leaf %d", i, g.LeafIndex())
		}
	}
	// Each joined group works on its own: a message from one is read by another and by Alice.
	m, err := gs[2].Encrypt([]byte("hi"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []*Group{gs[0], alice.g} {
		if r, err := g.Process(reencode(t, m), ProcessOptions{}); err != nil || string(r.ApplicationData) != "hi" {
			t.Fatalf("read: %v", err)
		}
	}
	stranger := newGoClient(t, 1, "stranger")
	_, err = JoinFromWelcomeMany(w, append(js[:1:1], Joiner{KeyPackage: stranger.kp, Private: stranger.kpPriv, Signer: stranger.signer}), JoinOptions{})
	if !errors.Is(err, ErrNotInvited) {
		t.Fatalf("a KeyPackage the Welcome is not for: %v", err)
	}
}

// TestMemberState restores two members of one group from one public state, their member states
// and secret trees: they share the tree, continue their ratchets, and parts of another epoch or
// damaged parts are refused.
func TestMemberState(t *testing.T) {
	t.Parallel()
	alice, bob, carol := threeMembers(t)
	m, err := alice.g.Encrypt([]byte("one"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.g.Process(reencode(t, m), ProcessOptions{}); err != nil {
		t.Fatal(err)
	}
	pubBytes, err := bob.g.MarshalPublicState()
	if err != nil {
		t.Fatal(err)
	}
	if other, _ := carol.g.MarshalPublicState(); !bytes.Equal(other, pubBytes) {
		t.Fatal("members of one epoch encode different public states")
	}
	pub, err := LoadPublicGroup(pubBytes)
	if err != nil {
		t.Fatal(err)
	}
	restore := func(g *Group) (*Group, []byte, []byte) {
		t.Helper()
		mem, err := g.MarshalMemberState()
		if err != nil {
			t.Fatal(err)
		}
		st, err := g.MarshalSecretTree()
		if err != nil {
			t.Fatal(err)
		}
		if len(mem) >= len(pubBytes) {
			t.Fatalf("member state of %d bytes, public state %d", len(mem), len(pubBytes))
		}
		r, err := LoadMember(pub, mem, st)
		if err != nil {
			t.Fatal(err)
		}
		return r, mem, st
	}
	bob2, bobMem, bobST := restore(bob.g)
	carol2, _, _ := restore(carol.g)
	if bob2.tree != carol2.tree || bob2.tree != pub.tree {
		t.Fatal("restored members do not share the public state's tree")
	}
	sameEpoch(t, alice.g, bob2, carol2)
	m2, err := alice.g.Encrypt([]byte("two"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := bob2.Process(reencode(t, m2), ProcessOptions{}); err != nil || r.Generation != 1 {
		t.Fatalf("restored reader: %v", err)
	}
	if _, err := bob2.Process(reencode(t, m), ProcessOptions{}); !errors.Is(err, ErrGenerationTooOld) {
		t.Fatalf("replay to the restored reader: %v", err)
	}
	if r, err := carol2.Process(reencode(t, m), ProcessOptions{}); err != nil || r.Generation != 0 {
		t.Fatalf("restored member that had not read: %v", err)
	}

	pc, err := alice.g.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nextPub, err := LoadPublicGroup(mustBytes(t)(pc.State.MarshalPublicState()))
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		pub     *PublicGroup
		mem, st []byte
	}{
		"public state of the next epoch": {nextPub, bobMem, bobST},
		"no public state":                {nil, bobMem, bobST},
		"member state version":           {pub, append([]byte{9}, bobMem[1:]...), bobST},
		"truncated member state":         {pub, bobMem[:len(bobMem)-1], bobST},
		"whole state as member state":    {pub, mustBytes(t)(bob.g.MarshalBinary()), bobST},
		"empty secret tree":              {pub, bobMem, nil},
	} {
		if _, err := LoadMember(c.pub, c.mem, c.st); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

func mustBytes(t testing.TB) func([]byte, error) []byte {
	return func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

// FuzzLoadMember feeds damaged member states to LoadMember: it never panics, and what it
// accepts encodes to a member state that loads again to the same bytes.
func FuzzLoadMember(f *testing.F) {
	_, bob, _ := threeMembers(f)
	pub, err := LoadPublicGroup(mustBytes(f)(bob.g.MarshalPublicState()))
	if err != nil {
		f.Fatal(err)
	}
	mem := mustBytes(f)(bob.g.MarshalMemberState())
	st := mustBytes(f)(bob.g.MarshalSecretTree())
	f.Add(mem)
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := LoadMember(pub, b, st)
		if err != nil {
			return
		}
		again, err := g.MarshalMemberState()
		if err != nil {
			t.Fatal(err)
		}
		g2, err := LoadMember(pub, again, st)
		if err != nil {
			t.Fatalf("re-encoded member state refused: %v", err)
		}
		if third, _ := g2.MarshalMemberState(); !bytes.Equal(third, again) {
			t.Fatal("member state encoding not stable")
		}
	})
}

// TestWelcomeSigner: a member joined from a Welcome knows whose commit added it (the GroupInfo's
// signer), for JoinFromWelcome and JoinFromWelcomeMany; a created group and a later epoch do not.
func TestWelcomeSigner(t *testing.T) {
	t.Parallel()
	alice, bob, carol := newGoClient(t, 1, "alice"), newGoClient(t, 1, "bob"), newGoClient(t, 1, "carol")
	var err error
	if alice.g, err = CreateGroup([]byte("group"), alice.signer, alice.cred(), GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, ok := alice.g.WelcomeSigner(); ok {
		t.Fatal("a created group names a Welcome signer")
	}
	pc, err := alice.g.Commit(CommitOptions{Add: []*KeyPackage{bob.kp}})
	if err != nil {
		t.Fatal(err)
	}
	if alice.g, err = pc.Confirm(); err != nil {
		t.Fatal(err)
	}
	if bob.g, err = JoinFromWelcome(reencode(t, pc.Welcome).Welcome, bob.kp, bob.kpPriv, bob.signer, JoinOptions{}); err != nil {
		t.Fatal(err)
	}
	if l, ok := bob.g.WelcomeSigner(); !ok || l != alice.g.LeafIndex() {
		t.Fatalf("bob's Welcome signer: %d, %v; want alice's leaf %d", l, ok, alice.g.LeafIndex())
	}
	// Bob adds Carol: her Welcome is Bob's.
	pc, err = bob.g.Commit(CommitOptions{Add: []*KeyPackage{carol.kp}})
	if err != nil {
		t.Fatal(err)
	}
	if bob.g, err = pc.Confirm(); err != nil {
		t.Fatal(err)
	}
	if _, ok := bob.g.WelcomeSigner(); ok {
		t.Fatal("bob's next epoch still names a Welcome signer")
	}
	gs, err := JoinFromWelcomeMany(reencode(t, pc.Welcome).Welcome, []Joiner{{KeyPackage: carol.kp, Private: carol.kpPriv, Signer: carol.signer}}, JoinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l, ok := gs[0].WelcomeSigner(); !ok || l != bob.g.LeafIndex() {
		t.Fatalf("carol's Welcome signer: %d, %v; want bob's leaf %d", l, ok, bob.g.LeafIndex())
	}
}
