package mls

import (
	"bytes"
	"errors"
	"testing"
)

// TestPrivateMessageSender reads the sender leaf and generation of PrivateMessages without
// changing the reader's state: the sender itself learns its own leaf (and still cannot decrypt
// its message), a receiver decrypts afterwards, and a message of another epoch is refused.
func TestPrivateMessageSender(t *testing.T) {
	t.Parallel()
	alice, bob := newGoClient(t, 1, "alice"), newGoClient(t, 1, "bob")
	var err error
	if alice.g, err = CreateGroup([]byte("group"), alice.signer, alice.cred(), GroupOptions{}); err != nil {
		t.Fatal(err)
	}
	pc, err := alice.g.Commit(CommitOptions{Add: []*KeyPackage{bob.kp}})
	if err != nil {
		t.Fatal(err)
	}
	alice.g = confirm(t, pc)
	if bob.g, err = JoinFromWelcome(reencode(t, pc.Welcome).Welcome, bob.kp, bob.kpPriv, bob.signer, JoinOptions{}); err != nil {
		t.Fatal(err)
	}
	for gen := range uint32(3) {
		m, err := bob.g.Encrypt([]byte("hi"), nil)
		if err != nil {
			t.Fatal(err)
		}
		m = reencode(t, m)
		for _, reader := range []*Group{alice.g, bob.g} {
			leaf, g, err := reader.PrivateMessageSender(m.PrivateMessage)
			if err != nil || leaf != bob.g.LeafIndex() || g != gen {
				t.Fatalf("sender %d generation %d (%v), want %d %d", leaf, g, err, bob.g.LeafIndex(), gen)
			}
		}
		if _, err := bob.g.Process(m, ProcessOptions{}); err == nil {
			t.Fatal("the sender decrypted its own message")
		}
		r, err := alice.g.Process(m, ProcessOptions{})
		if err != nil || !bytes.Equal(r.ApplicationData, []byte("hi")) {
			t.Fatalf("after peeking: %v", err)
		}
	}
	old, err := alice.g.Encrypt([]byte("old"), nil)
	if err != nil {
		t.Fatal(err)
	}
	pc, err = alice.g.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := pc.State.PrivateMessageSender(old.PrivateMessage); !errors.Is(err, ErrWrongGroup) {
		t.Fatalf("message of the previous epoch: %v", err)
	}
	if _, _, err := pc.State.PrivateMessageSender(nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("nil message: %v", err)
	}
}
