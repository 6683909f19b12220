package mls

import (
	"bytes"
	"errors"
	"testing"
)

func init() { vectorLayouts["message-protection.json"] = testMessageProtectionVectors }

type messageProtectionCase struct {
	suiteField
	GroupID                 hexBytes `json:"group_id"`
	Epoch                   uint64   `json:"epoch"`
	TreeHash                hexBytes `json:"tree_hash"`
	ConfirmedTranscriptHash hexBytes `json:"confirmed_transcript_hash"`
	SignaturePriv           hexBytes `json:"signature_priv"`
	SignaturePub            hexBytes `json:"signature_pub"`
	EncryptionSecret        hexBytes `json:"encryption_secret"`
	SenderDataSecret        hexBytes `json:"sender_data_secret"`
	MembershipKey           hexBytes `json:"membership_key"`
	Proposal                hexBytes `json:"proposal"`
	ProposalPriv            hexBytes `json:"proposal_priv"`
	ProposalPub             hexBytes `json:"proposal_pub"`
	Commit                  hexBytes `json:"commit"`
	CommitPriv              hexBytes `json:"commit_priv"`
	CommitPub               hexBytes `json:"commit_pub"`
	Application             hexBytes `json:"application"`
	ApplicationPriv         hexBytes `json:"application_priv"`
}

// ecdsaScalar left-pads an ECDSA private scalar to its curve's size. The upstream
// message-protection.json encodes the P-521 scalar of suite 5 in 65 bytes (leading zero byte
// dropped), while the suite expects the fixed-size 66-byte encoding (as crypto-basics.json uses).
func ecdsaScalar(cs CipherSuite, priv []byte) []byte {
	size := map[CipherSuite]int{2: 32, 5: 66, 7: 48}[cs]
	if size == 0 || len(priv) >= size {
		return priv
	}
	return append(make([]byte, size-len(priv)), priv...)
}

// mpSender is the sender of every message-protection vector: leaf 1 of a two-member group.
const mpSender = 1

func (c *messageProtectionCase) groupContext() *GroupContext {
	return &GroupContext{
		Version:                 ProtocolVersionMLS10,
		CipherSuite:             c.CipherSuite,
		GroupID:                 c.GroupID,
		Epoch:                   c.Epoch,
		TreeHash:                c.TreeHash,
		ConfirmedTranscriptHash: c.ConfirmedTranscriptHash,
	}
}

// unprotect decodes an MLSMessage and returns its verified AuthenticatedContent, using a fresh secret
// tree so that every message is independent of the order of checks.
func (c *messageProtectionCase) unprotect(t *testing.T, s *suite, msg []byte) (*AuthenticatedContent, error) {
	t.Helper()
	m, err := DecodeMLSMessage(msg)
	if err != nil {
		return nil, err
	}
	ctx := c.groupContext()
	var ac *AuthenticatedContent
	switch m.WireFormat {
	case WireFormatPublicMessage:
		ac, err = unprotectPublic(s, m.PublicMessage, ctx, c.MembershipKey)
	case WireFormatPrivateMessage:
		tree, terr := newSecretTree(s, c.EncryptionSecret, 2, defaultSecretTreeLimits)
		if terr != nil {
			t.Fatal(terr)
		}
		ac, err = unprotectPrivate(s, m.PrivateMessage, ctx, tree, c.SenderDataSecret)
	default:
		t.Fatalf("unexpected wire format %s", m.WireFormat)
	}
	if err != nil {
		return nil, err
	}
	if ac.Content.Sender != (Sender{Type: SenderTypeMember, Index: mpSender}) {
		t.Errorf("sender %v, want member leaf %d", ac.Content.Sender, mpSender)
	}
	if err := verifyContent(s, ac, ctx, c.SignaturePub); err != nil {
		return nil, err
	}
	return ac, nil
}

// body returns the TLS encoding of the content body, for comparison with the vector's proposal,
// commit and application fields.
func contentBody(t *testing.T, ac *AuthenticatedContent) []byte {
	t.Helper()
	switch ac.Content.ContentType {
	case ContentTypeApplication:
		return ac.Content.ApplicationData
	case ContentTypeProposal:
		b, err := ac.Content.Proposal.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	default:
		b, err := ac.Content.Commit.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

// protect signs and protects content of type ct with body as the vector's sender.
func (c *messageProtectionCase) protect(t *testing.T, s *suite, wf WireFormat, ct ContentType, body []byte) ([]byte, error) {
	t.Helper()
	fc := &FramedContent{GroupID: c.GroupID, Epoch: c.Epoch, Sender: Sender{Type: SenderTypeMember, Index: mpSender},
		AuthenticatedData: []byte("aad"), ContentType: ct}
	switch ct {
	case ContentTypeApplication:
		fc.ApplicationData = body
	case ContentTypeProposal:
		p, err := DecodeProposal(body)
		if err != nil {
			t.Fatal(err)
		}
		fc.Proposal = p
	case ContentTypeCommit:
		cm, err := DecodeCommit(body)
		if err != nil {
			t.Fatal(err)
		}
		fc.Commit = cm
	}
	ctx := c.groupContext()
	ac, err := signContent(s, wf, fc, ctx, ecdsaScalar(c.CipherSuite, c.SignaturePriv))
	if err != nil {
		return nil, err
	}
	if ct == ContentTypeCommit {
		ac.Auth.ConfirmationTag = s.mac(c.MembershipKey, []byte("any tag; it is not checked here"))
	}
	m := &MLSMessage{Version: ProtocolVersionMLS10, WireFormat: wf}
	switch wf {
	case WireFormatPublicMessage:
		if m.PublicMessage, err = protectPublic(s, ac, ctx, c.MembershipKey); err != nil {
			return nil, err
		}
	case WireFormatPrivateMessage:
		tree, terr := newSecretTree(s, c.EncryptionSecret, 2, defaultSecretTreeLimits)
		if terr != nil {
			t.Fatal(terr)
		}
		if m.PrivateMessage, err = protectPrivate(s, ac, tree, c.SenderDataSecret, 32); err != nil {
			return nil, err
		}
	}
	return m.Encode()
}

// testMessageProtectionVectors runs message-protection.json: unprotect the given Public and
// PrivateMessages (membership tag, sender data, content decryption, signature), compare the content,
// then protect the same content ourselves and unprotect it again. Sending an application message as a
// PublicMessage must fail.
func testMessageProtectionVectors(t *testing.T, raw []byte) {
	runCases(t, raw, func(t *testing.T, s *suite, c *messageProtectionCase) {
		checks := []struct {
			name string
			ct   ContentType
			body []byte
			msg  []byte
		}{
			{"proposal_pub", ContentTypeProposal, c.Proposal, c.ProposalPub},
			{"proposal_priv", ContentTypeProposal, c.Proposal, c.ProposalPriv},
			{"commit_pub", ContentTypeCommit, c.Commit, c.CommitPub},
			{"commit_priv", ContentTypeCommit, c.Commit, c.CommitPriv},
			{"application_priv", ContentTypeApplication, c.Application, c.ApplicationPriv},
		}
		for _, ch := range checks {
			// 1. Unprotect the given message.
			ac, err := c.unprotect(t, s, ch.msg)
			if err != nil {
				t.Errorf("%s: unprotect: %v", ch.name, err)
				continue
			}
			if ac.Content.ContentType != ch.ct || !bytes.Equal(contentBody(t, ac), ch.body) {
				t.Errorf("%s: content differs from the vector", ch.name)
				continue
			}
			// 2. Protect the same content ourselves and unprotect it again.
			msg, err := c.protect(t, s, ac.WireFormat, ch.ct, ch.body)
			if err != nil {
				t.Errorf("%s: protect: %v", ch.name, err)
				continue
			}
			ac2, err := c.unprotect(t, s, msg)
			if err != nil {
				t.Errorf("%s: unprotect own message: %v", ch.name, err)
				continue
			}
			if !bytes.Equal(contentBody(t, ac2), ch.body) || string(ac2.Content.AuthenticatedData) != "aad" {
				t.Errorf("%s: own message round-trip differs", ch.name)
			}
		}
		// An application message must not be sent as a PublicMessage.
		if _, err := c.protect(t, s, WireFormatPublicMessage, ContentTypeApplication, c.Application); !errors.Is(err, ErrNotAllowed) {
			t.Errorf("application as PublicMessage: got %v, want ErrNotAllowed", err)
		}
	})
}
