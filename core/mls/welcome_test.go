package mls

import (
	"bytes"
	"errors"
	"testing"
)

func init() { vectorLayouts["welcome.json"] = testWelcomeVectors }

type welcomeCase struct {
	suiteField
	InitPriv   hexBytes `json:"init_priv"`
	SignerPub  hexBytes `json:"signer_pub"`
	KeyPackage hexBytes `json:"key_package"`
	Welcome    hexBytes `json:"welcome"`
}

// testWelcomeVectors runs welcome.json: find our EncryptedGroupSecrets by KeyPackageRef, decrypt them
// with init_priv, decrypt the GroupInfo, verify its signature and recompute its confirmation tag from
// the joiner secret (no PSKs). Then seal a Welcome of our own for the same KeyPackage and open it.
func testWelcomeVectors(t *testing.T, raw []byte) {
	runCases(t, raw, func(t *testing.T, s *suite, c *welcomeCase) {
		kpMsg, err := DecodeMLSMessage(c.KeyPackage)
		if err != nil || kpMsg.WireFormat != WireFormatKeyPackage {
			t.Fatalf("key_package: %v (wire format %v)", err, kpMsg)
		}
		kp := kpMsg.KeyPackage
		if err := kp.Verify(); err != nil {
			t.Errorf("KeyPackage signatures: %v", err)
		}
		initPub, err := s.kemPublicKey(c.InitPriv)
		if err != nil || !bytes.Equal(initPub, kp.InitKey) {
			t.Fatalf("init_priv does not match the KeyPackage's init key (%v)", err)
		}
		wMsg, err := DecodeMLSMessage(c.Welcome)
		if err != nil || wMsg.WireFormat != WireFormatWelcome {
			t.Fatalf("welcome: %v", err)
		}
		ref, err := kp.Ref()
		if err != nil {
			t.Fatal(err)
		}

		gs, gi := openAndCheckWelcome(t, s, wMsg.Welcome, ref, c.InitPriv, c.SignerPub)
		if gs == nil {
			return
		}

		// Our own Welcome for the same KeyPackage, with the same secrets and GroupInfo.
		own, err := sealWelcome(s, gi, gs.JoinerSecret, nil, []welcomeRecipient{{keyPackage: kp, secrets: gs}})
		if err != nil {
			t.Fatalf("sealWelcome: %v", err)
		}
		enc, err := (&MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatWelcome, Welcome: own}).Encode()
		if err != nil {
			t.Fatal(err)
		}
		again, err := DecodeMLSMessage(enc)
		if err != nil {
			t.Fatal(err)
		}
		gs2, gi2 := openAndCheckWelcome(t, s, again.Welcome, ref, c.InitPriv, c.SignerPub)
		if gs2 == nil {
			return
		}
		if !bytes.Equal(gs2.JoinerSecret, gs.JoinerSecret) || gi2.Signer != gi.Signer {
			t.Error("own Welcome does not carry the same secrets and GroupInfo")
		}
		if _, err := openGroupSecrets(s, again.Welcome, append([]byte{1}, ref...), c.InitPriv); !errors.Is(err, ErrNotInvited) {
			t.Errorf("unknown KeyPackageRef: got %v, want ErrNotInvited", err)
		}

		// Re-sign the GroupInfo with a fresh key: it verifies with that key and no longer with the
		// vector's signer key.
		priv, pub, err := s.generateSignatureKeyPair(nil)
		if err != nil {
			t.Fatal(err)
		}
		key, err := s.parseSigningKey(priv)
		if err != nil {
			t.Fatal(err)
		}
		resigned := *gi
		if err := signGroupInfo(s, &resigned, key); err != nil {
			t.Fatal(err)
		}
		if err := verifyGroupInfo(s, &resigned, pub); err != nil {
			t.Errorf("re-signed GroupInfo: %v", err)
		}
		if err := verifyGroupInfo(s, &resigned, c.SignerPub); !errors.Is(err, ErrSignature) {
			t.Errorf("re-signed GroupInfo with the old signer key: got %v, want ErrSignature", err)
		}
	})
}

// openAndCheckWelcome opens w and checks the GroupInfo signature and confirmation tag.
func openAndCheckWelcome(t *testing.T, s *suite, w *Welcome, ref, initPriv, signerPub []byte) (*groupSecrets, *GroupInfo) {
	t.Helper()
	gs, err := openGroupSecrets(s, w, ref, initPriv)
	if err != nil {
		t.Errorf("group secrets: %v", err)
		return nil, nil
	}
	if len(gs.PSKs) != 0 {
		t.Fatalf("welcome.json cases have no PSKs, got %d", len(gs.PSKs))
	}
	gi, err := openGroupInfo(s, w, gs.JoinerSecret, nil)
	if err != nil {
		t.Errorf("group info: %v", err)
		return nil, nil
	}
	if err := verifyGroupInfo(s, gi, signerPub); err != nil {
		t.Errorf("GroupInfo signature: %v", err)
		return nil, nil
	}
	gc, err := gi.GroupContext.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	es := s.epochSecretsFromJoiner(gs.JoinerSecret, nil, gc)
	if !s.verifyConfirmationTag(es.confirmationKey, gi.GroupContext.ConfirmedTranscriptHash, gi.ConfirmationTag) {
		t.Error("confirmation tag does not match the one derived from the joiner secret")
		return nil, nil
	}
	return gs, gi
}
