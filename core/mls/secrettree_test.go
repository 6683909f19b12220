package mls

import (
	"bytes"
	"errors"
	"testing"
)

func init() { vectorLayouts["secret-tree.json"] = testSecretTreeVectors }

type secretTreeCase struct {
	suiteField
	EncryptionSecret hexBytes `json:"encryption_secret"`
	SenderData       struct {
		SenderDataSecret hexBytes `json:"sender_data_secret"`
		Ciphertext       hexBytes `json:"ciphertext"`
		Key              hexBytes `json:"key"`
		Nonce            hexBytes `json:"nonce"`
	} `json:"sender_data"`
	Leaves [][]struct {
		Generation       uint32   `json:"generation"`
		HandshakeKey     hexBytes `json:"handshake_key"`
		HandshakeNonce   hexBytes `json:"handshake_nonce"`
		ApplicationKey   hexBytes `json:"application_key"`
		ApplicationNonce hexBytes `json:"application_nonce"`
	} `json:"leaves"`
}

func testSecretTreeVectors(t *testing.T, raw []byte) {
	runCases(t, raw, func(t *testing.T, s *suite, c *secretTreeCase) {
		key, nonce := s.senderDataKeyNonce(c.SenderData.SenderDataSecret, c.SenderData.Ciphertext)
		equalHex(t, "sender data key", key, c.SenderData.Key)
		equalHex(t, "sender data nonce", nonce, c.SenderData.Nonce)

		n := uint32(len(c.Leaves))
		// Receiving: jump straight to each listed generation.
		recv, err := newSecretTree(s, c.EncryptionSecret, n, defaultSecretTreeLimits)
		if err != nil {
			t.Fatal(err)
		}
		// Sending: ratchet one generation at a time with nextKey.
		send, err := newSecretTree(s, c.EncryptionSecret, n, defaultSecretTreeLimits)
		if err != nil {
			t.Fatal(err)
		}
		for i, gens := range c.Leaves {
			leaf := leafIndex(i)
			for _, g := range gens {
				for _, rt := range []struct {
					typ        ratchetType
					key, nonce []byte
				}{
					{ratchetHandshake, g.HandshakeKey, g.HandshakeNonce},
					{ratchetApplication, g.ApplicationKey, g.ApplicationNonce},
				} {
					k, nc, gen, err := recv.keyForGeneration(leaf, rt.typ, g.Generation)
					if err != nil {
						t.Fatalf("leaf %d %s generation %d: %v", i, rt.typ, g.Generation, err)
					}
					if gen != g.Generation {
						t.Errorf("leaf %d: generation %d returned as %d", i, g.Generation, gen)
					}
					equalHex(t, "key", k, rt.key)
					equalHex(t, "nonce", nc, rt.nonce)
					for {
						k, nc, gen, err := send.nextKey(leaf, rt.typ)
						if err != nil {
							t.Fatalf("leaf %d %s nextKey: %v", i, rt.typ, err)
						}
						if gen == g.Generation {
							equalHex(t, "nextKey key", k, rt.key)
							equalHex(t, "nextKey nonce", nc, rt.nonce)
							break
						}
						if gen > g.Generation {
							t.Fatalf("nextKey skipped generation %d", g.Generation)
						}
					}
				}
			}
		}
	})
}

func newTestSecretTree(t *testing.T, nLeaves uint32, limits secretTreeLimits) *secretTree {
	t.Helper()
	s, err := MLS128DHKEMX25519AES128GCMSHA256Ed25519.impl()
	if err != nil {
		t.Fatal(err)
	}
	st, err := newSecretTree(s, bytes.Repeat([]byte{0x42}, s.hashSize()), nLeaves, limits)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestSecretTreeDeletesConsumedKeys(t *testing.T) {
	t.Parallel()
	st := newTestSecretTree(t, 4, secretTreeLimits{maxForward: 10, maxRetained: 3})
	// Generation 5 first: 0..4 are retained up to 3 (so 0 and 1 are evicted).
	k5, _, _, err := st.keyForGeneration(2, ratchetApplication, 5)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := st.keyForGeneration(2, ratchetApplication, 5); !errors.Is(err, ErrGenerationTooOld) {
		t.Fatalf("replayed generation 5: %v, want ErrGenerationTooOld", err)
	}
	for _, g := range []uint32{0, 1} {
		if _, _, _, err := st.keyForGeneration(2, ratchetApplication, g); !errors.Is(err, ErrGenerationTooOld) {
			t.Fatalf("evicted generation %d: %v, want ErrGenerationTooOld", g, err)
		}
	}
	for _, g := range []uint32{3, 2, 4} {
		if _, _, _, err := st.keyForGeneration(2, ratchetApplication, g); err != nil {
			t.Fatalf("retained generation %d: %v", g, err)
		}
		if _, _, _, err := st.keyForGeneration(2, ratchetApplication, g); !errors.Is(err, ErrGenerationTooOld) {
			t.Fatalf("second use of retained generation %d: %v", g, err)
		}
	}
	// The window bounds forward jumps: 6 + 10 is the furthest allowed.
	if _, _, _, err := st.keyForGeneration(2, ratchetApplication, 17); !errors.Is(err, ErrGenerationTooFar) {
		t.Fatalf("generation beyond the window: %v, want ErrGenerationTooFar", err)
	}
	if _, _, _, err := st.keyForGeneration(2, ratchetApplication, 16); err != nil {
		t.Fatalf("generation at the edge of the window: %v", err)
	}
	// The handshake ratchet of the same leaf is independent.
	if _, _, g, err := st.nextKey(2, ratchetHandshake); err != nil || g != 0 {
		t.Fatalf("handshake nextKey = generation %d, %v", g, err)
	}
	// Out of range leaves are rejected.
	if _, _, _, err := st.nextKey(4, ratchetHandshake); !errors.Is(err, ErrLeafOutOfRange) {
		t.Fatalf("leaf 4 of 4: %v", err)
	}
	// Node secrets on the way to leaf 2 are gone; only unvisited subtrees keep theirs.
	st.mu.Lock()
	for x := range st.nodes {
		if inSubtree(leafIndex(2).node(), x) {
			t.Errorf("node %d above leaf 2 still holds its secret", x)
		}
	}
	st.mu.Unlock()
	if len(k5) != 16 {
		t.Fatalf("key of %d bytes", len(k5))
	}
}

func TestSecretTreeNoRetention(t *testing.T) {
	t.Parallel()
	st := newTestSecretTree(t, 1, secretTreeLimits{maxForward: 4, maxRetained: 0})
	if _, _, _, err := st.keyForGeneration(0, ratchetHandshake, 3); err != nil {
		t.Fatal(err)
	}
	for g := range uint32(4) {
		if _, _, _, err := st.keyForGeneration(0, ratchetHandshake, g); !errors.Is(err, ErrGenerationTooOld) {
			t.Fatalf("generation %d with no retention: %v", g, err)
		}
	}
}

func TestSecretTreeRejectsBadParameters(t *testing.T) {
	t.Parallel()
	s, _ := MLS128DHKEMX25519AES128GCMSHA256Ed25519.impl()
	if _, err := newSecretTree(s, make([]byte, 32), 3, defaultSecretTreeLimits); err == nil {
		t.Error("3 leaves accepted")
	}
	if _, err := newSecretTree(s, make([]byte, 31), 4, defaultSecretTreeLimits); err == nil {
		t.Error("short encryption secret accepted")
	}
}

// TestSecretTreeManyRetainedOutOfOrder checks that the bookkeeping of retained keys stays bounded
// when keys are consumed out of order over many generations.
func TestSecretTreeManyRetainedOutOfOrder(t *testing.T) {
	t.Parallel()
	lim := secretTreeLimits{maxForward: 64, maxRetained: 8}
	st := newTestSecretTree(t, 2, lim)
	for base := uint32(0); base < 2000; base += 8 {
		if _, _, _, err := st.keyForGeneration(1, ratchetApplication, base+7); err != nil {
			t.Fatalf("generation %d: %v", base+7, err)
		}
		for g := base; g < base+7; g++ {
			if _, _, _, err := st.keyForGeneration(1, ratchetApplication, g); err != nil {
				t.Fatalf("late generation %d: %v", g, err)
			}
		}
	}
	r := &st.ratchets[1][ratchetApplication]
	if len(r.retained) != 0 || len(r.order) > 2*lim.maxRetained+16 {
		t.Fatalf("retained %d keys, order slice %d", len(r.retained), len(r.order))
	}
}
