package mls

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
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

// signingKey parses the vector's signature private key.
func (c *messageProtectionCase) signingKey(t *testing.T, s *suite) signingKey {
	t.Helper()
	k, err := s.parseSigningKey(ecdsaScalar(c.CipherSuite, c.SignaturePriv))
	if err != nil {
		t.Fatal(err)
	}
	return k
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
func (c *messageProtectionCase) unprotect(t *testing.T, s *suite, msg []byte) (*authenticatedContent, error) {
	t.Helper()
	m, err := DecodeMLSMessage(msg)
	if err != nil {
		return nil, err
	}
	ctx := c.groupContext()
	var ac *authenticatedContent
	switch m.WireFormat {
	case WireFormatPublicMessage:
		ac, err = unprotectPublic(s, m.PublicMessage, ctx, ctxBytesOf(ctx), c.MembershipKey)
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
	if err := verifyContent(s, ac, ctxBytesOf(ctx), c.SignaturePub); err != nil {
		return nil, err
	}
	return ac, nil
}

// body returns the TLS encoding of the content body, for comparison with the vector's proposal,
// commit and application fields.
func contentBody(t *testing.T, ac *authenticatedContent) []byte {
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
	ac, err := signContent(s, wf, fc, ctxBytesOf(ctx), c.signingKey(t, s))
	if err != nil {
		return nil, err
	}
	if ct == ContentTypeCommit {
		ac.Auth.ConfirmationTag = s.mac(c.MembershipKey, []byte("any tag; it is not checked here"))
	}
	m := &MLSMessage{Version: ProtocolVersionMLS10, WireFormat: wf}
	switch wf {
	case WireFormatPublicMessage:
		if m.PublicMessage, err = protectPublic(s, ac, ctxBytesOf(ctx), c.MembershipKey); err != nil {
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

// firstProtectionCase returns the suite-1 case of message-protection.json.
func firstProtectionCase(t *testing.T) (*messageProtectionCase, *suite) {
	t.Helper()
	raw, err := os.ReadFile("testdata/message-protection.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []messageProtectionCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	c := &cases[0]
	s, err := c.CipherSuite.impl()
	if err != nil {
		t.Fatal(err)
	}
	return c, s
}

// TestUnprotectRejectsTampering changes one thing at a time in valid messages and expects the
// matching error.
func TestUnprotectRejectsTampering(t *testing.T) {
	t.Parallel()
	c, s := firstProtectionCase(t)
	mutate := func(msg []byte, f func(m *MLSMessage)) []byte {
		m, err := DecodeMLSMessage(msg)
		if err != nil {
			t.Fatal(err)
		}
		f(m)
		out, err := m.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	flip := func(b []byte) []byte { b = append([]byte(nil), b...); b[len(b)-1] ^= 1; return b }
	tests := []struct {
		name string
		msg  []byte
		want error
	}{
		{"public: membership tag", mutate(c.ProposalPub, func(m *MLSMessage) { m.PublicMessage.MembershipTag = flip(m.PublicMessage.MembershipTag) }), ErrMembershipTag},
		{"public: authenticated data", mutate(c.ProposalPub, func(m *MLSMessage) { m.PublicMessage.Content.AuthenticatedData = []byte("x") }), ErrMembershipTag},
		{"public: epoch", mutate(c.CommitPub, func(m *MLSMessage) { m.PublicMessage.Content.Epoch++ }), ErrWrongGroup},
		{"public: group id", mutate(c.CommitPub, func(m *MLSMessage) { m.PublicMessage.Content.GroupID = flip(m.PublicMessage.Content.GroupID) }), ErrWrongGroup},
		{"private: ciphertext", mutate(c.ApplicationPriv, func(m *MLSMessage) { m.PrivateMessage.Ciphertext = flip(m.PrivateMessage.Ciphertext) }), ErrDecrypt},
		{"private: sender data", mutate(c.ApplicationPriv, func(m *MLSMessage) {
			m.PrivateMessage.EncryptedSenderData = flip(m.PrivateMessage.EncryptedSenderData)
		}), ErrDecrypt},
		{"private: authenticated data", mutate(c.ApplicationPriv, func(m *MLSMessage) { m.PrivateMessage.AuthenticatedData = []byte("x") }), ErrDecrypt},
		{"private: content type", mutate(c.ProposalPriv, func(m *MLSMessage) { m.PrivateMessage.ContentType = ContentTypeCommit }), ErrDecrypt},
		{"private: epoch", mutate(c.ApplicationPriv, func(m *MLSMessage) { m.PrivateMessage.Epoch-- }), ErrWrongGroup},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := c.unprotect(t, s, tc.msg); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}

	t.Run("wrong signature key", func(t *testing.T) {
		_, otherPub, err := s.generateSignatureKeyPair(nil)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := DecodeMLSMessage(c.ProposalPub)
		ac, err := unprotectPublic(s, m.PublicMessage, c.groupContext(), ctxBytesOf(c.groupContext()), c.MembershipKey)
		if err != nil {
			t.Fatal(err)
		}
		if err := verifyContent(s, ac, ctxBytesOf(c.groupContext()), otherPub); !errors.Is(err, ErrSignature) {
			t.Fatalf("got %v, want ErrSignature", err)
		}
	})
}

// TestPrivateMessageGenerations sends several messages and receives them out of order; a replay of
// a received message fails because its key is deleted.
func TestPrivateMessageGenerations(t *testing.T) {
	t.Parallel()
	c, s := firstProtectionCase(t)
	ctx := c.groupContext()
	sender, err := newSecretTree(s, c.EncryptionSecret, 2, defaultSecretTreeLimits)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*PrivateMessage
	for i := range 4 {
		fc := &FramedContent{GroupID: c.GroupID, Epoch: c.Epoch, Sender: Sender{Type: SenderTypeMember, Index: mpSender},
			ContentType: ContentTypeApplication, ApplicationData: []byte{byte(i)}}
		ac, err := signContent(s, WireFormatPrivateMessage, fc, ctxBytesOf(ctx), c.signingKey(t, s))
		if err != nil {
			t.Fatal(err)
		}
		pm, err := protectPrivate(s, ac, sender, c.SenderDataSecret, 0)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, pm)
	}
	receiver, err := newSecretTree(s, c.EncryptionSecret, 2, defaultSecretTreeLimits)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{2, 0, 3, 1} {
		ac, err := unprotectPrivate(s, msgs[i], ctx, receiver, c.SenderDataSecret)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if err := verifyContent(s, ac, ctxBytesOf(ctx), c.SignaturePub); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !bytes.Equal(ac.Content.ApplicationData, []byte{byte(i)}) {
			t.Fatalf("message %d: wrong content %x", i, ac.Content.ApplicationData)
		}
	}
	if _, err := unprotectPrivate(s, msgs[2], ctx, receiver, c.SenderDataSecret); !errors.Is(err, ErrGenerationTooOld) {
		t.Fatalf("replay: got %v, want ErrGenerationTooOld", err)
	}
}

// TestProtectRejects checks the combinations RFC 9420 forbids on the sending side.
func TestProtectRejects(t *testing.T) {
	t.Parallel()
	c, s := firstProtectionCase(t)
	ctx := c.groupContext()
	tree, err := newSecretTree(s, c.EncryptionSecret, 2, defaultSecretTreeLimits)
	if err != nil {
		t.Fatal(err)
	}
	ext := &FramedContent{GroupID: c.GroupID, Epoch: c.Epoch, Sender: Sender{Type: SenderTypeExternal, Index: 0},
		ContentType: ContentTypeProposal, Proposal: &Proposal{Type: ProposalTypeRemove, Removed: 1}}
	ac, err := signContent(s, WireFormatPrivateMessage, ext, ctxBytesOf(ctx), c.signingKey(t, s))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := protectPrivate(s, ac, tree, c.SenderDataSecret, 0); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("external sender in a PrivateMessage: got %v, want ErrNotAllowed", err)
	}
	if _, err := protectPublic(s, ac, ctxBytesOf(ctx), c.MembershipKey); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("content signed for PrivateMessage sent as PublicMessage: got %v, want ErrNotAllowed", err)
	}
	if _, err := signContent(s, WireFormatWelcome, ext, ctxBytesOf(ctx), c.signingKey(t, s)); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("framed content with wire format welcome: got %v, want ErrNotAllowed", err)
	}
	// An external sender's PublicMessage carries no membership tag and is not signed over the context.
	ac, err = signContent(s, WireFormatPublicMessage, ext, nil, c.signingKey(t, s))
	if err != nil {
		t.Fatal(err)
	}
	pm, err := protectPublic(s, ac, ctxBytesOf(ctx), c.MembershipKey)
	if err != nil {
		t.Fatal(err)
	}
	if pm.MembershipTag != nil {
		t.Error("external sender's PublicMessage has a membership tag")
	}
	// Sender types restrict the content type (RFC 9420 §6).
	for _, tc := range []struct {
		sender SenderType
		ct     ContentType
	}{{SenderTypeExternal, ContentTypeCommit}, {SenderTypeNewMemberProposal, ContentTypeCommit}, {SenderTypeNewMemberCommit, ContentTypeProposal}} {
		bad := &PublicMessage{Content: FramedContent{GroupID: c.GroupID, Epoch: c.Epoch, Sender: Sender{Type: tc.sender},
			ContentType: tc.ct, Proposal: ext.Proposal, Commit: &Commit{}}}
		if _, err := unprotectPublic(s, bad, ctx, ctxBytesOf(ctx), c.MembershipKey); !errors.Is(err, ErrNotAllowed) {
			t.Errorf("%s sender with %s content: got %v, want ErrNotAllowed", tc.sender, tc.ct, err)
		}
		ac := &authenticatedContent{WireFormat: WireFormatPublicMessage, Content: bad.Content}
		if _, err := protectPublic(s, ac, ctxBytesOf(ctx), c.MembershipKey); !errors.Is(err, ErrNotAllowed) {
			t.Errorf("protect: %s sender with %s content: got %v, want ErrNotAllowed", tc.sender, tc.ct, err)
		}
	}
	got, err := unprotectPublic(s, pm, ctx, ctxBytesOf(ctx), c.MembershipKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyContent(s, got, nil, c.SignaturePub); err != nil {
		t.Fatal(err)
	}
}

// ctxBytesOf encodes a GroupContext for the framing functions (nil for nil).
func ctxBytesOf(gc *GroupContext) []byte {
	if gc == nil {
		return nil
	}
	b, err := gc.Marshal()
	if err != nil {
		panic(err)
	}
	return b
}
