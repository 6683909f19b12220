package mls

import "testing"

// The passive-client layouts (test-vectors/passive-client-*.json and every interop/passive/
// file): a client joins by Welcome with the given keys, then processes each epoch's proposals and
// commit and must reach the given epoch authenticators.

func init() {
	for _, name := range []string{"passive-client-welcome.json", "passive-client-handling-commit.json", "passive-client-random.json"} {
		vectorLayouts[name] = testPassiveClientVectors
	}
	for _, name := range []string{"application.json", "branch.json", "commit.json", "external_join.json",
		"external_proposals.json", "reinit.json", "welcome_join.json"} {
		interopPassiveLayouts[name] = testPassiveClientVectors
	}
}

type passiveClientCase struct {
	suiteField
	ExternalPSKs []struct {
		PSKID hexBytes `json:"psk_id"`
		PSK   hexBytes `json:"psk"`
	} `json:"external_psks"`
	KeyPackage                hexBytes `json:"key_package"`
	SignaturePriv             hexBytes `json:"signature_priv"`
	EncryptionPriv            hexBytes `json:"encryption_priv"`
	InitPriv                  hexBytes `json:"init_priv"`
	Welcome                   hexBytes `json:"welcome"`
	RatchetTree               hexBytes `json:"ratchet_tree"`
	InitialEpochAuthenticator hexBytes `json:"initial_epoch_authenticator"`
	Epochs                    []struct {
		Proposals          []hexBytes `json:"proposals"`
		Commit             hexBytes   `json:"commit"`
		EpochAuthenticator hexBytes   `json:"epoch_authenticator"`
	} `json:"epochs"`
}

func testPassiveClientVectors(t *testing.T, raw []byte) {
	runCases(t, raw, func(t *testing.T, s *suite, c *passiveClientCase) {
		kpMsg, err := DecodeMLSMessage(c.KeyPackage)
		if err != nil || kpMsg.KeyPackage == nil {
			t.Fatalf("key_package: %v", err)
		}
		wMsg, err := DecodeMLSMessage(c.Welcome)
		if err != nil || wMsg.Welcome == nil {
			t.Fatalf("welcome: %v", err)
		}
		psks := PSKMap{}
		for _, p := range c.ExternalPSKs {
			psks[string(p.PSKID)] = p.PSK
		}
		var opts JoinOptions
		opts.PSKStore = psks
		if len(c.RatchetTree) > 0 {
			if opts.RatchetTree, err = DecodeRatchetTree(c.RatchetTree); err != nil {
				t.Fatalf("ratchet_tree: %v", err)
			}
		}
		sigPriv, initPriv, encPriv := padP521(s, c.SignaturePriv), padP521(s, c.InitPriv), padP521(s, c.EncryptionPriv)
		sigPub, err := s.signaturePublicKey(sigPriv)
		if err != nil {
			t.Fatal(err)
		}
		g, err := JoinFromWelcome(wMsg.Welcome, kpMsg.KeyPackage,
			&KeyPackagePrivate{InitPrivate: initPriv, EncryptionPrivate: encPriv},
			&Signer{CipherSuite: s.id, Private: sigPriv, Public: sigPub}, opts)
		if err != nil {
			t.Fatalf("join: %v", err)
		}
		equalHex(t, "initial epoch authenticator", g.EpochAuthenticator(), c.InitialEpochAuthenticator)
		for i, e := range c.Epochs {
			for j, p := range e.Proposals {
				m, err := DecodeMLSMessage(p)
				if err != nil {
					t.Fatalf("epoch %d proposal %d: %v", i, j, err)
				}
				r, err := g.Process(m, ProcessOptions{PSKStore: psks})
				if err != nil {
					t.Fatalf("epoch %d proposal %d: %v", i, j, err)
				}
				if r.Kind != ReceivedProposal {
					t.Fatalf("epoch %d proposal %d processed as %d", i, j, r.Kind)
				}
			}
			m, err := DecodeMLSMessage(e.Commit)
			if err != nil {
				t.Fatalf("epoch %d commit: %v", i, err)
			}
			r, err := g.Process(m, ProcessOptions{PSKStore: psks})
			if err != nil {
				t.Fatalf("epoch %d commit: %v", i, err)
			}
			if r.Kind != ReceivedCommit || r.Commit.State == nil {
				t.Fatalf("epoch %d: commit processed as %+v", i, r)
			}
			g = r.Commit.State
			equalHex(t, "epoch authenticator", g.EpochAuthenticator(), e.EpochAuthenticator)
		}
	})
}

// padP521 restores the leading zero bytes of a P-521 private scalar: the vector generator encodes
// some scalars in 65 bytes instead of the fixed 66 (SEC 1 and RFC 9180 SerializePrivateKey).
func padP521(s *suite, priv []byte) []byte {
	if s.id != MLS256DHKEMP521AES256GCMSHA512P521 || len(priv) >= 66 {
		return priv
	}
	return append(make([]byte, 66-len(priv)), priv...)
}
