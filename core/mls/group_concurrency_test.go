package mls

import (
	"sync"
	"testing"
)

// TestGroupConcurrentUse encrypts, proposes, serializes, processes and commits on shared states from
// several goroutines (run it with -race).
func TestGroupConcurrentUse(t *testing.T) {
	cs := MLS128DHKEMX25519AES128GCMSHA256Ed25519
	alice, bob := newGoClient(t, cs, "alice"), newGoClient(t, cs, "bob")
	var err error
	if alice.g, err = CreateGroup([]byte("race"), alice.signer, alice.cred(), GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	pc, err := alice.g.Commit(CommitOptions{Add: []*KeyPackage{bob.kp}})
	if err != nil {
		t.Fatal(err)
	}
	alice.g = pc.State
	if bob.g, err = JoinFromWelcome(pc.Welcome.Welcome, bob.kp, bob.kpPriv, bob.signer, JoinOptions{}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	msgs := make(chan *MLSMessage, 64)
	for range 4 {
		wg.Go(func() {
			for range 8 {
				m, err := alice.g.Encrypt([]byte("x"), nil)
				if err != nil {
					t.Error(err)
					return
				}
				msgs <- m
			}
		})
	}
	wg.Go(func() {
		if _, err := alice.g.ProposeRemove(1); err != nil {
			t.Error(err)
		}
		if _, err := alice.g.MarshalBinary(); err != nil {
			t.Error(err)
		}
	})
	wg.Wait()
	close(msgs)
	var pwg sync.WaitGroup
	for m := range msgs {
		pwg.Go(func() {
			if _, err := bob.g.Process(reencode(t, m), ProcessOptions{}); err != nil {
				t.Error(err)
			}
		})
	}
	pwg.Go(func() { _, _ = bob.g.Commit(CommitOptions{}) })
	pwg.Wait()
}
