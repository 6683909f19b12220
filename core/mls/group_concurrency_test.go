package mls

import (
	"sync"
	"testing"
)

// TestGroupConcurrentUse encrypts, proposes, serializes, processes and commits on shared states from
// several goroutines (run it with -race).
func TestGroupConcurrentUse(t *testing.T) {
	t.Parallel()
	cs := MLS128DHKEMX25519AES128GCMSHA256Ed25519
	alice, bob := newGoClient(t, cs, "alice"), newGoClient(t, cs, "bob")
	createWith(t, alice, GroupOptions{}, bob)
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
