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
func TestDeterministicRandomness(t *testing.T) {
	for _, cs := range SupportedCipherSuites() {
		s, err := cs.impl()
		if err != nil {
			t.Fatal(err)
		}
		run := func() [][]byte {
			cryptotest.SetGlobalRandom(t, 42)
			sigPriv, sigPub, err := s.generateSignatureKeyPair()
			if err != nil {
				t.Fatal(err)
			}
			kemPriv, kemPub, err := s.generateKEMKeyPair()
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
			rb, err := randomBytes(8)
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

func TestRandomnessAndClockSeams(t *testing.T) {
	oldRand, oldNow := randReader, nowFunc
	t.Cleanup(func() { randReader, nowFunc = oldRand, oldNow })

	randReader = failingReader{}
	if _, err := randomBytes(4); err == nil {
		t.Error("randomBytes succeeded with a failing source")
	}
	s, _ := MLS256DHKEMX448AES256GCMSHA512Ed448.impl()
	if _, _, err := s.generateSignatureKeyPair(); err == nil {
		t.Error("Ed448 key generation succeeded with a failing source")
	}
	randReader = oldRand

	fixed := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	nowFunc = func() time.Time { return fixed }
	if !now().Equal(fixed) {
		t.Errorf("now() = %v, want %v", now(), fixed)
	}
}
