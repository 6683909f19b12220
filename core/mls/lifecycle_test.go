package mls

import (
	"errors"
	"sync"
	"testing"
)

// useAll calls every operation a superseded, removed or unconfirmed state refuses and checks each
// fails with want; msg is a message of g's epoch for Process.
func useAll(t *testing.T, g *Group, msg *MLSMessage, want error) {
	t.Helper()
	ops := map[string]func() error{
		"Encrypt": func() error { _, err := g.Encrypt([]byte("x"), nil); return err },
		"Commit":  func() error { _, err := g.Commit(CommitOptions{}); return err },
		"Process": func() error { _, err := g.Process(reencode(t, msg), ProcessOptions{}); return err },
		"ProposeRemove": func() error {
			_, err := g.ProposeRemove(0)
			return err
		},
		"ProposeUpdate":     func() error { _, err := g.ProposeUpdate(); return err },
		"ProposeSelfRemove": func() error { _, err := g.ProposeSelfRemove(); return err },
		"WithConfig":        func() error { _, err := g.WithConfig(Config{PadTo: 32}); return err },
	}
	for name, op := range ops {
		if err := op(); !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", name, err, want)
		}
	}
}

// TestSupersededGroup: once a successor state was adopted, the old state refuses Encrypt, Commit,
// Process (and the other operations that send, receive or store); a PendingCommit's state refuses
// them until Confirm; a removed member's state refuses them with ErrRemoved.
func TestSupersededGroup(t *testing.T) {
	t.Parallel()
	alice, bob := newGoClient(t, 1, "alice"), newGoClient(t, 1, "bob")
	createWith(t, alice, GroupOptions{}, bob)

	t.Run("processed commit", func(t *testing.T) {
		t.Parallel()
		a, b := cloneGroup(t, alice.g), cloneGroup(t, bob.g)
		pc, err := a.Commit(CommitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		msg, err := a.Encrypt([]byte("old epoch"), nil)
		if err != nil {
			t.Fatal(err)
		}
		r, err := b.Process(reencode(t, pc.Commit), ProcessOptions{})
		if err != nil {
			t.Fatal(err)
		}
		useAll(t, b, msg, ErrSuperseded)
		if _, err := b.MarshalBinary(); !errors.Is(err, ErrSuperseded) {
			t.Errorf("MarshalBinary of a superseded state: %v", err)
		}
		if _, err := r.Commit.State.Encrypt([]byte("new epoch"), nil); err != nil {
			t.Errorf("the successor: %v", err)
		}
	})

	t.Run("pending and confirmed commit", func(t *testing.T) {
		t.Parallel()
		a := cloneGroup(t, alice.g)
		pc, err := a.Commit(CommitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		other, err := a.Commit(CommitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		msg, err := a.Encrypt([]byte("before the commit is accepted"), nil)
		if err != nil {
			t.Fatalf("a state with a pending commit still sends: %v", err)
		}
		useAll(t, pc.State, msg, ErrNotConfirmed)
		if _, err := pc.State.MarshalBinary(); err != nil {
			t.Errorf("MarshalBinary of a pending state: %v", err)
		}
		next := confirm(t, pc)
		if again := confirm(t, pc); again != next {
			t.Error("confirming twice gave another state")
		}
		if next.parent.Load() != nil {
			t.Error("a confirmed state keeps the state it was made from reachable")
		}
		useAll(t, a, msg, ErrSuperseded)
		if _, err := other.Confirm(); !errors.Is(err, ErrSuperseded) {
			t.Errorf("a second commit of the same epoch confirmed: %v", err)
		}
		if _, err := next.Encrypt([]byte("new epoch"), nil); err != nil {
			t.Errorf("the confirmed state: %v", err)
		}
	})

	t.Run("rejected commit", func(t *testing.T) {
		t.Parallel()
		// The delivery service takes bob's commit instead of alice's: alice drops hers, processes
		// bob's, and her dropped commit can no longer be confirmed.
		a, b := cloneGroup(t, alice.g), cloneGroup(t, bob.g)
		mine, err := a.Commit(CommitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := b.Commit(CommitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Process(reencode(t, theirs.Commit), ProcessOptions{}); err != nil {
			t.Fatalf("processing the accepted commit after making one: %v", err)
		}
		if _, err := mine.Confirm(); !errors.Is(err, ErrSuperseded) {
			t.Errorf("the rejected commit confirmed: %v", err)
		}
	})

	t.Run("WithConfig", func(t *testing.T) {
		t.Parallel()
		a := cloneGroup(t, alice.g)
		msg, err := a.Encrypt([]byte("x"), nil)
		if err != nil {
			t.Fatal(err)
		}
		c := withConfig(t, a, Config{PrivateHandshakes: true})
		useAll(t, a, msg, ErrSuperseded)
		if _, err := c.Encrypt([]byte("y"), nil); err != nil {
			t.Errorf("the copy: %v", err)
		}
	})

	t.Run("removed", func(t *testing.T) {
		t.Parallel()
		a, b := cloneGroup(t, alice.g), cloneGroup(t, bob.g)
		msg, err := a.Encrypt([]byte("x"), nil)
		if err != nil {
			t.Fatal(err)
		}
		pc, err := a.Commit(CommitOptions{Remove: []LeafIndex{b.LeafIndex()}})
		if err != nil {
			t.Fatal(err)
		}
		if r, err := b.Process(reencode(t, pc.Commit), ProcessOptions{}); err != nil || !r.Commit.SelfRemoved {
			t.Fatalf("removal: %v", err)
		}
		useAll(t, b, msg, ErrRemoved)
	})

	t.Run("concurrent processing", func(t *testing.T) {
		t.Parallel()
		// Two goroutines process the same commit with one state: one successor wins.
		a, b := cloneGroup(t, alice.g), cloneGroup(t, bob.g)
		pc, err := a.Commit(CommitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			oks  int
			errs []error
		)
		for range 2 {
			wg.Go(func() {
				_, err := b.Process(reencode(t, pc.Commit), ProcessOptions{})
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					oks++
				} else {
					errs = append(errs, err)
				}
			})
		}
		wg.Wait()
		if oks != 1 || len(errs) != 1 || !errors.Is(errs[0], ErrSuperseded) {
			t.Fatalf("%d successes, errors %v", oks, errs)
		}
	})
}
