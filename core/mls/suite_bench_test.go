package mls

import (
	"bytes"
	"fmt"
	"testing"
)

// Benchmarks of the per-suite primitives. Run with:
//
//	go test ./core/mls -run '^$' -bench 'Primitive|SecretTree|KeySchedule' -benchmem
//
// Besides wall-clock ns/op each benchmark reports cpu-ns/op, the CPU time of the benchmark's
// thread per operation, which stays meaningful on a machine shared with other work.
//
// Results are recorded in docs/performance.md ("core/mls primitives").

func benchSuites(b *testing.B, f func(b *testing.B, s *suite)) {
	for _, cs := range SupportedCipherSuites() {
		s, err := cs.impl()
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("suite%d", uint16(cs)), func(b *testing.B) { f(b, s) })
	}
}

func BenchmarkPrimitiveSign(b *testing.B) {
	benchSuites(b, func(b *testing.B, s *suite) {
		priv, _, err := s.generateSignatureKeyPair(nil)
		if err != nil {
			b.Fatal(err)
		}
		content := bytes.Repeat([]byte{1}, 256)
		done := cpuTimer(b)
		for b.Loop() {
			if _, err := s.signWithLabel(priv, "FramedContentTBS", content); err != nil {
				b.Fatal(err)
			}
		}
		done()
	})
}

// BenchmarkPrimitiveSignParsed signs with a key parsed once (parseSigningKey + signWithLabelKey).
func BenchmarkPrimitiveSignParsed(b *testing.B) {
	benchSuites(b, func(b *testing.B, s *suite) {
		priv, _, err := s.generateSignatureKeyPair(nil)
		if err != nil {
			b.Fatal(err)
		}
		k, err := s.parseSigningKey(priv)
		if err != nil {
			b.Fatal(err)
		}
		content := bytes.Repeat([]byte{1}, 256)
		done := cpuTimer(b)
		for b.Loop() {
			if _, err := s.signWithLabelKey(k, "FramedContentTBS", content); err != nil {
				b.Fatal(err)
			}
		}
		done()
	})
}

func BenchmarkPrimitiveVerify(b *testing.B) {
	benchSuites(b, func(b *testing.B, s *suite) {
		priv, pub, err := s.generateSignatureKeyPair(nil)
		if err != nil {
			b.Fatal(err)
		}
		content := bytes.Repeat([]byte{1}, 256)
		sig, err := s.signWithLabel(priv, "FramedContentTBS", content)
		if err != nil {
			b.Fatal(err)
		}
		done := cpuTimer(b)
		for b.Loop() {
			if err := s.verifyWithLabel(pub, "FramedContentTBS", content, sig); err != nil {
				b.Fatal(err)
			}
		}
		done()
	})
}

func BenchmarkPrimitiveEncryptWithLabel(b *testing.B) {
	benchSuites(b, func(b *testing.B, s *suite) {
		_, pub, err := s.generateKEMKeyPair(nil)
		if err != nil {
			b.Fatal(err)
		}
		pt := make([]byte, s.hashSize())
		done := cpuTimer(b)
		for b.Loop() {
			if _, _, err := s.encryptWithLabel(pub, "UpdatePathNode", []byte("ctx"), pt); err != nil {
				b.Fatal(err)
			}
		}
		done()
	})
}

func BenchmarkPrimitiveDecryptWithLabel(b *testing.B) {
	benchSuites(b, func(b *testing.B, s *suite) {
		priv, pub, err := s.generateKEMKeyPair(nil)
		if err != nil {
			b.Fatal(err)
		}
		kemOut, ct, err := s.encryptWithLabel(pub, "UpdatePathNode", []byte("ctx"), make([]byte, s.hashSize()))
		if err != nil {
			b.Fatal(err)
		}
		done := cpuTimer(b)
		for b.Loop() {
			if _, err := s.decryptWithLabel(priv, "UpdatePathNode", []byte("ctx"), kemOut, ct); err != nil {
				b.Fatal(err)
			}
		}
		done()
	})
}

func BenchmarkPrimitiveDeriveKeyPair(b *testing.B) {
	benchSuites(b, func(b *testing.B, s *suite) {
		ikm := bytes.Repeat([]byte{9}, s.hashSize())
		done := cpuTimer(b)
		for b.Loop() {
			if _, _, err := s.deriveKeyPair(ikm); err != nil {
				b.Fatal(err)
			}
		}
		done()
	})
}

func BenchmarkPrimitiveExpandWithLabel(b *testing.B) {
	benchSuites(b, func(b *testing.B, s *suite) {
		secret := make([]byte, s.hashSize())
		done := cpuTimer(b)
		for b.Loop() {
			s.expandWithLabel(secret, "tree", []byte("left"), s.hashSize())
		}
		done()
	})
}

func BenchmarkPrimitiveAEADSeal100B(b *testing.B) {
	benchSuites(b, func(b *testing.B, s *suite) {
		key, nonce := make([]byte, s.aeadKeySize()), make([]byte, s.aeadNonceSize())
		pt := make([]byte, 100)
		b.SetBytes(100)
		done := cpuTimer(b)
		for b.Loop() {
			if _, err := s.seal(key, nonce, nil, pt); err != nil {
				b.Fatal(err)
			}
		}
		done()
	})
}

// BenchmarkSecretTreeNextKey measures one ratchet step (key, nonce, next secret) on a leaf whose
// ratchet is already initialised: the per-message cost of the secret tree.
func BenchmarkSecretTreeNextKey(b *testing.B) {
	benchSuites(b, func(b *testing.B, s *suite) {
		st, err := newSecretTree(s, make([]byte, s.hashSize()), 1024, defaultSecretTreeLimits)
		if err != nil {
			b.Fatal(err)
		}
		done := cpuTimer(b)
		for b.Loop() {
			if _, _, _, err := st.nextKey(5, ratchetApplication); err != nil {
				b.Fatal(err)
			}
		}
		done()
	})
}

// BenchmarkSecretTreeFirstKey1024 measures the first key of a leaf in a fresh tree of 1024 leaves:
// the ten node splits down to the leaf plus the ratchet initialisation.
func BenchmarkSecretTreeFirstKey1024(b *testing.B) {
	s, _ := MLS128DHKEMX25519AES128GCMSHA256Ed25519.impl()
	secret := make([]byte, s.hashSize())
	done := cpuTimer(b)
	for b.Loop() {
		st, err := newSecretTree(s, secret, 1024, defaultSecretTreeLimits)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, _, err := st.keyForGeneration(700, ratchetApplication, 0); err != nil {
			b.Fatal(err)
		}
	}
	done()
}

// BenchmarkKeyScheduleEpoch measures deriving every secret of a new epoch (plus the external key pair).
func BenchmarkKeyScheduleEpoch(b *testing.B) {
	benchSuites(b, func(b *testing.B, s *suite) {
		gc, err := (&GroupContext{Version: 1, CipherSuite: s.id, GroupID: make([]byte, 16),
			TreeHash: make([]byte, s.hashSize()), ConfirmedTranscriptHash: make([]byte, s.hashSize())}).Marshal()
		if err != nil {
			b.Fatal(err)
		}
		init := make([]byte, s.hashSize())
		done := cpuTimer(b)
		for b.Loop() {
			e := s.deriveEpochSecrets(init, nil, nil, gc)
			if _, _, err := s.externalKeyPair(e.externalSecret); err != nil {
				b.Fatal(err)
			}
		}
		done()
	})
}
