package mls

import (
	"bytes"
	"errors"
	"testing"
)

func init() { vectorLayouts["crypto-basics.json"] = testCryptoBasicsVectors }

type cryptoBasicsCase struct {
	suiteField
	RefHash struct {
		Label string   `json:"label"`
		Value hexBytes `json:"value"`
		Out   hexBytes `json:"out"`
	} `json:"ref_hash"`
	ExpandWithLabel struct {
		Secret  hexBytes `json:"secret"`
		Label   string   `json:"label"`
		Context hexBytes `json:"context"`
		Length  int      `json:"length"`
		Out     hexBytes `json:"out"`
	} `json:"expand_with_label"`
	DeriveSecret struct {
		Secret hexBytes `json:"secret"`
		Label  string   `json:"label"`
		Out    hexBytes `json:"out"`
	} `json:"derive_secret"`
	DeriveTreeSecret struct {
		Secret     hexBytes `json:"secret"`
		Label      string   `json:"label"`
		Generation uint32   `json:"generation"`
		Length     int      `json:"length"`
		Out        hexBytes `json:"out"`
	} `json:"derive_tree_secret"`
	SignWithLabel struct {
		Priv      hexBytes `json:"priv"`
		Pub       hexBytes `json:"pub"`
		Content   hexBytes `json:"content"`
		Label     string   `json:"label"`
		Signature hexBytes `json:"signature"`
	} `json:"sign_with_label"`
	EncryptWithLabel struct {
		Priv       hexBytes `json:"priv"`
		Pub        hexBytes `json:"pub"`
		Label      string   `json:"label"`
		Context    hexBytes `json:"context"`
		Plaintext  hexBytes `json:"plaintext"`
		KEMOutput  hexBytes `json:"kem_output"`
		Ciphertext hexBytes `json:"ciphertext"`
	} `json:"encrypt_with_label"`
}

func testCryptoBasicsVectors(t *testing.T, raw []byte) {
	runCases(t, raw, func(t *testing.T, s *suite, c *cryptoBasicsCase) {
		equalHex(t, "RefHash", s.refHash(c.RefHash.Label, c.RefHash.Value), c.RefHash.Out)

		e := c.ExpandWithLabel
		if !s.validExpandLength(e.Length) {
			t.Fatalf("ExpandWithLabel length %d out of range", e.Length)
		}
		equalHex(t, "ExpandWithLabel", s.expandWithLabel(e.Secret, e.Label, e.Context, e.Length), e.Out)
		equalHex(t, "DeriveSecret", s.deriveSecret(c.DeriveSecret.Secret, c.DeriveSecret.Label), c.DeriveSecret.Out)
		d := c.DeriveTreeSecret
		if !s.validExpandLength(d.Length) {
			t.Fatalf("DeriveTreeSecret length %d out of range", d.Length)
		}
		equalHex(t, "DeriveTreeSecret", s.deriveTreeSecret(d.Secret, d.Label, d.Generation, d.Length), d.Out)

		sg := c.SignWithLabel
		if pub, err := s.signaturePublicKey(sg.Priv); err != nil {
			t.Errorf("signature public key: %v", err)
		} else {
			equalHex(t, "signature public key from private", pub, sg.Pub)
		}
		if err := s.verifyWithLabel(sg.Pub, sg.Label, sg.Content, sg.Signature); err != nil {
			t.Errorf("VerifyWithLabel(given signature): %v", err)
		}
		sig, err := s.signWithLabel(sg.Priv, sg.Label, sg.Content)
		if err != nil {
			t.Fatalf("SignWithLabel: %v", err)
		}
		if err := s.verifyWithLabel(sg.Pub, sg.Label, sg.Content, sig); err != nil {
			t.Errorf("VerifyWithLabel(new signature): %v", err)
		}
		if err := s.verifyWithLabel(sg.Pub, sg.Label+"x", sg.Content, sig); !errors.Is(err, ErrSignature) {
			t.Errorf("VerifyWithLabel with another label: %v, want ErrSignature", err)
		}

		ec := c.EncryptWithLabel
		if pub, err := s.kemPublicKey(ec.Priv); err != nil {
			t.Errorf("HPKE public key: %v", err)
		} else {
			equalHex(t, "HPKE public key from private", pub, ec.Pub)
		}
		pt, err := s.decryptWithLabel(ec.Priv, ec.Label, ec.Context, ec.KEMOutput, ec.Ciphertext)
		if err != nil {
			t.Fatalf("DecryptWithLabel(given ciphertext): %v", err)
		}
		equalHex(t, "DecryptWithLabel", pt, ec.Plaintext)
		kemOut, ct, err := s.encryptWithLabel(ec.Pub, ec.Label, ec.Context, ec.Plaintext)
		if err != nil {
			t.Fatalf("EncryptWithLabel: %v", err)
		}
		pt, err = s.decryptWithLabel(ec.Priv, ec.Label, ec.Context, kemOut, ct)
		if err != nil {
			t.Fatalf("DecryptWithLabel(new ciphertext): %v", err)
		}
		equalHex(t, "DecryptWithLabel round trip", pt, ec.Plaintext)
		if _, err := s.decryptWithLabel(ec.Priv, ec.Label, append(bytes.Clone(ec.Context), 0), kemOut, ct); !errors.Is(err, ErrDecrypt) {
			t.Errorf("DecryptWithLabel with another context: %v, want ErrDecrypt", err)
		}
	})
}

func TestCipherSuiteNames(t *testing.T) {
	t.Parallel()
	for _, cs := range SupportedCipherSuites() {
		if !cs.Supported() {
			t.Errorf("%v listed but not supported", cs)
		}
		if _, err := cs.impl(); err != nil {
			t.Errorf("%v: %v", cs, err)
		}
	}
	if got := MLS128DHKEMX25519AES128GCMSHA256Ed25519.String(); got != "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519" {
		t.Errorf("suite 1 name %q", got)
	}
	for _, cs := range []CipherSuite{0, 8, 0xffff} {
		if cs.Supported() {
			t.Errorf("%v reported supported", cs)
		}
		if _, err := cs.impl(); !errors.Is(err, ErrUnsupportedCipherSuite) {
			t.Errorf("%v: err %v, want ErrUnsupportedCipherSuite", cs, err)
		}
	}
	if got := CipherSuite(0x1234).String(); got != "CipherSuite(0x1234)" {
		t.Errorf("unknown suite name %q", got)
	}
}

// TestSuitePrimitivesRoundTrip exercises key generation, sign/verify, HPKE, AEAD and external init
// for every suite with fresh keys, including the failure paths callers rely on.
func TestSuitePrimitivesRoundTrip(t *testing.T) {
	t.Parallel()
	for _, cs := range SupportedCipherSuites() {
		t.Run(cs.String(), func(t *testing.T) {
			t.Parallel()
			s, err := cs.impl()
			if err != nil {
				t.Fatal(err)
			}
			// Signatures.
			sk, pk, err := s.generateSignatureKeyPair(nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.validateSignaturePublicKey(pk); err != nil {
				t.Fatalf("fresh signature key invalid: %v", err)
			}
			sig, err := s.signWithLabel(sk, "LeafNodeTBS", []byte("content"))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.verifyWithLabel(pk, "LeafNodeTBS", []byte("content"), sig); err != nil {
				t.Fatalf("verify: %v", err)
			}
			if err := s.verifyWithLabel(pk, "LeafNodeTBS", []byte("tampered"), sig); !errors.Is(err, ErrSignature) {
				t.Fatalf("verify of other content: %v", err)
			}
			if err := s.verifyWithLabel([]byte{1, 2, 3}, "x", nil, sig); !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("verify with a bad key: %v", err)
			}
			parsed, err := s.parseSigningKey(sk)
			if err != nil {
				t.Fatal(err)
			}
			sig2, err := s.signWithLabelKey(parsed, "LeafNodeTBS", []byte("content"))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.verifyWithLabel(pk, "LeafNodeTBS", []byte("content"), sig2); err != nil {
				t.Fatalf("verify of signature by parsed key: %v", err)
			}
			if _, err := s.parseSigningKey([]byte{1}); !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("parse of a bad key: %v", err)
			}
			if _, err := s.signWithLabel([]byte{1}, "x", nil); !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("sign with a bad key: %v", err)
			}
			// HPKE.
			hsk, hpk, err := s.generateKEMKeyPair(nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.validateKEMPublicKey(hpk); err != nil {
				t.Fatalf("fresh HPKE key invalid: %v", err)
			}
			if got, err := s.kemPublicKey(hsk); err != nil || !bytes.Equal(got, hpk) {
				t.Fatalf("kemPublicKey = %x, %v; want %x", got, err, hpk)
			}
			kemOut, ct, err := s.encryptWithLabel(hpk, "UpdatePathNode", []byte("ctx"), []byte("path secret"))
			if err != nil {
				t.Fatal(err)
			}
			pt, err := s.decryptWithLabel(hsk, "UpdatePathNode", []byte("ctx"), kemOut, ct)
			if err != nil || string(pt) != "path secret" {
				t.Fatalf("decrypt = %q, %v", pt, err)
			}
			ct[0] ^= 1
			if _, err := s.decryptWithLabel(hsk, "UpdatePathNode", []byte("ctx"), kemOut, ct); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("decrypt of tampered ciphertext: %v", err)
			}
			if _, _, err := s.encryptWithLabel([]byte{4, 5}, "x", nil, nil); !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("encrypt to a bad key: %v", err)
			}
			if _, err := s.decryptWithLabel([]byte{4, 5}, "x", nil, kemOut, ct); !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("decrypt with a bad key: %v", err)
			}
			// DeriveKeyPair is deterministic and accepts Nh-byte secrets.
			ikm := bytes.Repeat([]byte{7}, s.hashSize())
			p1, q1, err := s.deriveKeyPair(ikm)
			if err != nil {
				t.Fatal(err)
			}
			_, q2, err := s.deriveKeyPair(ikm)
			if err != nil || !bytes.Equal(q1, q2) {
				t.Fatalf("deriveKeyPair not deterministic: %x vs %x (%v)", q1, q2, err)
			}
			if got, err := s.kemPublicKey(p1); err != nil || !bytes.Equal(got, q1) {
				t.Fatalf("derived private key gives %x, %v; want %x", got, err, q1)
			}
			// External init.
			kemOut, secret, err := s.externalInit(q1)
			if err != nil {
				t.Fatal(err)
			}
			got, err := s.externalInitSecret(p1, kemOut)
			if err != nil || !bytes.Equal(got, secret) || len(secret) != s.hashSize() {
				t.Fatalf("external init secret %x, %v; want %x", got, err, secret)
			}
			// AEAD.
			key := bytes.Repeat([]byte{1}, s.aeadKeySize())
			nonce := bytes.Repeat([]byte{2}, s.aeadNonceSize())
			sealed, err := s.seal(key, nonce, []byte("aad"), []byte("hello"))
			if err != nil {
				t.Fatal(err)
			}
			if pt, err := s.open(key, nonce, []byte("aad"), sealed); err != nil || string(pt) != "hello" {
				t.Fatalf("open = %q, %v", pt, err)
			}
			if _, err := s.open(key, nonce, []byte("other"), sealed); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("open with other aad: %v", err)
			}
			if _, err := s.seal(key[1:], nonce, nil, nil); !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("seal with a short key: %v", err)
			}
			// MAC.
			tag := s.mac([]byte("k"), []byte("d"))
			if len(tag) != s.hashSize() || !s.verifyMAC([]byte("k"), []byte("d"), tag) || s.verifyMAC([]byte("k"), []byte("e"), tag) {
				t.Fatal("MAC verification inconsistent")
			}
		})
	}
}

// FuzzUntrustedCryptoInput feeds attacker-controlled bytes (public keys from leaf nodes and key
// packages, KEM outputs and ciphertexts from UpdatePaths and Welcomes, signatures) to the primitives
// of every suite: they must return errors, never panic, and never accept forged input.
func FuzzUntrustedCryptoInput(f *testing.F) {
	f.Add(uint8(0), []byte{}, []byte{}, []byte{})
	f.Add(uint8(1), bytes.Repeat([]byte{4}, 65), bytes.Repeat([]byte{1}, 65), bytes.Repeat([]byte{2}, 64))
	f.Add(uint8(3), bytes.Repeat([]byte{0}, 56), bytes.Repeat([]byte{0}, 56), bytes.Repeat([]byte{0}, 114))
	f.Add(uint8(4), bytes.Repeat([]byte{0xff}, 133), bytes.Repeat([]byte{4}, 133), bytes.Repeat([]byte{0x30}, 139))
	type keys struct {
		s               *suite
		sigPriv, sigPub []byte
		kemPriv, kemPub []byte
	}
	var all []keys
	for _, cs := range SupportedCipherSuites() {
		s, err := cs.impl()
		if err != nil {
			f.Fatal(err)
		}
		sp, spub, err := s.sig.generate(nil)
		if err != nil {
			f.Fatal(err)
		}
		kp, kpub, err := s.generateKEMKeyPair(nil)
		if err != nil {
			f.Fatal(err)
		}
		all = append(all, keys{s, sp, spub, kp, kpub})
	}
	f.Fuzz(func(t *testing.T, which uint8, a, b, c []byte) {
		k := all[int(which)%len(all)]
		s := k.s
		// Untrusted public keys.
		_ = s.validateKEMPublicKey(a)
		_ = s.validateSignaturePublicKey(a)
		if err := s.verifyWithLabel(a, "l", b, c); err == nil {
			t.Fatalf("suite %d: signature %x by fuzzed key %x verified", s.id, c, a)
		}
		if _, _, err := s.encryptWithLabel(a, "l", nil, b); err == nil && s.validateKEMPublicKey(a) != nil {
			t.Fatalf("suite %d: encrypted to an invalid key %x", s.id, a)
		}
		// Untrusted signature over our own key.
		if err := s.verifyWithLabel(k.sigPub, "l", b, c); err == nil {
			t.Fatalf("suite %d: fuzzed signature %x verified", s.id, c)
		}
		// Untrusted KEM output and ciphertext for our own key.
		if _, err := s.decryptWithLabel(k.kemPriv, "l", nil, a, b); err == nil {
			t.Fatalf("suite %d: fuzzed ciphertext decrypted", s.id)
		}
		_, _ = s.hpkeExportRecipient(k.kemPriv, a, nil, externalInitLabel, s.hashSize())
		// Untrusted private key bytes (from storage or a vector file).
		_, _ = s.kemPublicKey(a)
		_, _ = s.signaturePublicKey(a)
		if _, err := s.parseSigningKey(a); err == nil {
			if _, err := s.signWithLabel(a, "l", b); err != nil {
				t.Fatalf("suite %d: parsed key %x does not sign: %v", s.id, a, err)
			}
		}
		// AEAD with fuzzed ciphertext.
		if _, err := s.open(make([]byte, s.aeadKeySize()), make([]byte, s.aeadNonceSize()), nil, b); err == nil {
			t.Fatalf("suite %d: fuzzed AEAD ciphertext opened", s.id)
		}
		_, _, _ = s.deriveKeyPair(a)
	})
}
