package mls

import (
	"bytes"
	"errors"
	"testing"
)

// splitGroup returns a's state as its two parts.
func splitGroup(t testing.TB, g *Group) (epoch, st []byte) {
	t.Helper()
	epoch, err := g.MarshalEpochState()
	if err != nil {
		t.Fatal(err)
	}
	if st, err = g.MarshalSecretTree(); err != nil {
		t.Fatal(err)
	}
	return epoch, st
}

// threeMembers returns a group of alice, bob and carol (one commit adding two), each a client
// with its state.
func threeMembers(t testing.TB) (alice, bob, carol *goClient) {
	t.Helper()
	alice, bob, carol = newGoClient(t, 1, "alice"), newGoClient(t, 1, "bob"), newGoClient(t, 1, "carol")
	createWith(t, alice, GroupOptions{}, bob, carol)
	return alice, bob, carol
}

// TestGroupStateParts stores states as epoch state plus secret tree: application messages sent
// and received leave the epoch state unchanged, a restored sender does not reuse a generation, a
// restored receiver decrypts the next message and refuses a replay, and mismatched or damaged
// parts are refused.
func TestGroupStateParts(t *testing.T) {
	t.Parallel()
	alice, bob, carol := threeMembers(t)
	aliceEpoch, _ := splitGroup(t, alice.g)
	bobEpoch, _ := splitGroup(t, bob.g)
	var sent []*MLSMessage
	for range 3 {
		m, err := bob.g.Encrypt([]byte("hello"), nil)
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, reencode(t, m))
		if _, err := alice.g.Process(sent[len(sent)-1], ProcessOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ae, ast := splitGroup(t, alice.g)
	be, bst := splitGroup(t, bob.g)
	if !bytes.Equal(ae, aliceEpoch) || !bytes.Equal(be, bobEpoch) {
		t.Fatal("application messages changed the epoch state")
	}
	full, err := alice.g.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(ast) >= len(full)/2 {
		t.Fatalf("secret tree of %d bytes for a state of %d", len(ast), len(full))
	}

	// The restored sender continues at generation 3; the restored receiver reads it and refuses
	// a replay of an earlier one.
	bob2, err := LoadGroupParts(be, bst)
	if err != nil {
		t.Fatal(err)
	}
	alice2, err := LoadGroupParts(ae, ast)
	if err != nil {
		t.Fatal(err)
	}
	m, err := bob2.Encrypt([]byte("again"), nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := alice2.Process(reencode(t, m), ProcessOptions{})
	if err != nil || r.Generation != 3 || string(r.ApplicationData) != "again" {
		t.Fatalf("after restoring: generation %v (%v)", r, err)
	}
	if _, err := alice2.Process(sent[1], ProcessOptions{}); !errors.Is(err, ErrGenerationTooOld) {
		t.Fatalf("replay after restoring: %v", err)
	}
	// Carol never saw Bob's messages: she reads the restored sender's message too.
	if _, err := carol.g.Process(reencode(t, m), ProcessOptions{}); err != nil {
		t.Fatal(err)
	}

	// Parts that do not belong together, or damaged ones.
	other, _, _ := threeMembers(t)
	pc, err := other.g.Commit(CommitOptions{Add: []*KeyPackage{newGoClient(t, 1, "dave").kp, newGoClient(t, 1, "erin").kp}})
	if err != nil {
		t.Fatal(err)
	}
	_, wideST := splitGroup(t, pc.State) // 5 members: a secret tree of 8 leaves
	for name, c := range map[string][2][]byte{
		"full state as epoch state":  {full, ast},
		"secret tree of other width": {ae, wideST},
		"empty secret tree":          {ae, nil},
		"secret tree version":        {ae, append([]byte{9}, ast[1:]...)},
		"truncated secret tree":      {ae, ast[:len(ast)-1]},
		"trailing bytes":             {ae, append(bytes.Clone(ast), 0)},
	} {
		if _, err := LoadGroupParts(c[0], c[1]); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	if _, err := LoadGroupParts(ast, ast); err == nil {
		t.Error("a secret tree loaded as epoch state")
	}
}

// FuzzLoadGroupParts feeds damaged secret trees (and epoch states) to LoadGroupParts: it never
// panics, and what it accepts encodes to a secret tree that loads again to the same bytes.
func FuzzLoadGroupParts(f *testing.F) {
	alice, bob, _ := threeMembers(f)
	m, err := bob.g.Encrypt([]byte("x"), nil)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := alice.g.Process(reencode(f, m), ProcessOptions{}); err != nil {
		f.Fatal(err)
	}
	epoch, st := splitGroup(f, alice.g)
	f.Add(false, st)
	f.Add(false, []byte{1, 0, 0, 0, 4, 0, 0})
	f.Add(true, epoch)
	f.Fuzz(func(t *testing.T, asEpoch bool, b []byte) {
		e, s := epoch, b
		if asEpoch {
			e, s = b, st
		}
		g, err := LoadGroupParts(e, s)
		if err != nil {
			return
		}
		again, err := g.MarshalSecretTree()
		if err != nil {
			t.Fatal(err)
		}
		g2, err := LoadGroupParts(e, again)
		if err != nil {
			t.Fatalf("re-encoded secret tree refused: %v", err)
		}
		if third, _ := g2.MarshalSecretTree(); !bytes.Equal(third, again) {
			t.Fatal("secret tree encoding not stable")
		}
	})
}
