package mls

import (
	"bytes"
	"errors"
	"testing"
	"testing/cryptotest"
	"time"
)

// TestDeterministicRandomness shows that cryptotest.SetGlobalRandom makes every random operation
// of every suite reproducible: key generation (standard library and circl), HPKE encapsulation and
// ECDSA signing, plus the package's own randomBytes.
//
// It is the package's one test that cannot run in parallel: SetGlobalRandom replaces the process's
// randomness.
func TestDeterministicRandomness(t *testing.T) {
	for _, cs := range SupportedCipherSuites() {
		s, err := cs.impl()
		if err != nil {
			t.Fatal(err)
		}
		run := func() [][]byte {
			cryptotest.SetGlobalRandom(t, 42)
			sigPriv, sigPub, err := s.generateSignatureKeyPair(nil)
			if err != nil {
				t.Fatal(err)
			}
			kemPriv, kemPub, err := s.generateKEMKeyPair(nil)
			if err != nil {
				t.Fatal(err)
			}
			kemOut, ct, err := s.encryptWithLabel(kemPub, "l", nil, []byte("pt"))
			if err != nil {
				t.Fatal(err)
			}
			sig, err := s.signWithLabel(sigPriv, "l", []byte("c"))
			if err != nil {
				t.Fatal(err)
			}
			rb, err := randomBytes(nil, 8)
			if err != nil {
				t.Fatal(err)
			}
			return [][]byte{sigPriv, sigPub, kemPriv, kemPub, kemOut, ct, sig, rb}
		}
		a, b := run(), run()
		for i := range a {
			if !bytes.Equal(a[i], b[i]) {
				t.Errorf("%v: output %d differs between two runs with the same seed", cs, i)
			}
		}
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

// TestEnv: a state's randomness and clock come from its Env, so parallel tests need no package
// state: a failing source makes every operation that draws randomness fail, a fixed clock decides
// a KeyPackage's lifetime and whether an Add is still valid.
func TestEnv(t *testing.T) {
	t.Parallel()
	failing := Env{Rand: failingReader{}}
	if _, err := randomBytes(failingReader{}, 4); err == nil {
		t.Error("randomBytes succeeded with a failing source")
	}
	sg, err := GenerateSigner(1)
	if err != nil {
		t.Fatal(err)
	}
	cred := Credential{Type: CredentialTypeBasic, Identity: []byte("a")}
	if _, _, err := NewKeyPackage(sg, cred, KeyPackageOptions{Env: failing}); err == nil {
		t.Error("NewKeyPackage succeeded with a failing source")
	}
	if _, err := CreateGroup([]byte("g"), sg, cred, GroupOptions{Env: failing}); err == nil {
		t.Error("CreateGroup succeeded with a failing source")
	}

	fixed := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	clock := Env{Now: func() time.Time { return fixed }}
	kp, _, err := NewKeyPackage(sg, cred, KeyPackageOptions{Env: clock, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if got := time.Unix(int64(kp.LeafNode.Lifetime.NotAfter), 0); !got.Equal(fixed.Add(time.Hour)) {
		t.Errorf("lifetime ends %v, want %v", got, fixed.Add(time.Hour))
	}
	// A group whose clock is past the KeyPackage's lifetime refuses to add it; one within accepts.
	owner, err := GenerateSigner(1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		at time.Time
		ok bool
	}{{fixed.Add(30 * time.Minute), true}, {fixed.Add(2 * time.Hour), false}} {
		g, err := CreateGroup([]byte("g"), owner, Credential{Type: CredentialTypeBasic, Identity: []byte("o")},
			GroupOptions{Env: Env{Now: func() time.Time { return tc.at }}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.Commit(CommitOptions{Add: []*KeyPackage{kp}}); (err == nil) != tc.ok {
			t.Errorf("adding at %v: %v", tc.at, err)
		}
	}
}
