package mls

// Message framing and protection (RFC 9420 §6): signing FramedContent, PublicMessage membership tags,
// PrivateMessage content and sender-data encryption.
//
// The functions here are the building blocks the group state machine uses; they know nothing about
// the ratchet tree. The caller supplies the epoch's GroupContext and secrets, looks up the sender's
// signature key and checks that the sender is a member.

import (
	"bytes"
	"crypto/hmac"
	"errors"
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

// Errors reported by message protection; test with errors.Is.
var (
	// ErrMembershipTag means a PublicMessage's membership tag did not verify.
	ErrMembershipTag = errors.New("mls: membership tag verification failed")
	// ErrWrongGroup means a message's group ID or epoch is not the one of the GroupContext it was
	// processed with.
	ErrWrongGroup = errors.New("mls: message is for another group or epoch")
	// ErrNotAllowed means a combination RFC 9420 forbids, such as an application message sent as a
	// PublicMessage or a non-member sender in a PrivateMessage.
	ErrNotAllowed = errors.New("mls: not allowed by RFC 9420")
)

// Labels of RFC 9420 used by framing (without the "MLS 1.0 " prefix unless used with refHash).
const (
	labelFramedContentTBS = "FramedContentTBS"
	labelProposalRef      = "MLS 1.0 Proposal Reference"
	labelKeyPackageRef    = "MLS 1.0 KeyPackage Reference"
)

// signContent signs fc for sending with wire format wf and returns the AuthenticatedContent. For a
// commit, the caller sets Auth.ConfirmationTag afterwards (it is not covered by the signature). ctx
// is the encoded GroupContext (required for member and new_member_commit senders). The key is
// parsed once by the caller (parseSigningKey): parsing costs as much as a signature.
func signContent(s *suite, wf WireFormat, fc *FramedContent, ctx []byte, key signingKey) (*authenticatedContent, error) {
	if wf != WireFormatPublicMessage && wf != WireFormatPrivateMessage {
		return nil, fmt.Errorf("%w: framed content with wire format %s", ErrNotAllowed, wf)
	}
	if wf == WireFormatPublicMessage && fc.ContentType == ContentTypeApplication {
		return nil, fmt.Errorf("%w: application data in a PublicMessage", ErrNotAllowed)
	}
	enc, err := encodeContent(wf, fc, ctx, 0)
	if err != nil {
		return nil, err
	}
	in, err := enc.signInput()
	if err != nil {
		return nil, err
	}
	sig, err := key.sign(in)
	if err != nil {
		return nil, fmt.Errorf("mls: SignWithLabel %q: %w", labelFramedContentTBS, err)
	}
	return &authenticatedContent{WireFormat: wf, Content: *fc, Auth: FramedContentAuthData{Signature: sig}, enc: enc}, nil
}

// verifyContent checks the signature of ac with the sender's signature public key; ctx is the
// encoded GroupContext.
func verifyContent(s *suite, ac *authenticatedContent, ctx []byte, sigPub []byte) error {
	enc, err := ac.encoding(ctx)
	if err != nil {
		return err
	}
	in, err := enc.signInput()
	if err != nil {
		return err
	}
	if err := s.sig.verify(sigPub, in, ac.Auth.Signature); err != nil {
		return fmt.Errorf("mls: %s from %s: VerifyWithLabel %q: %w", ac.Content.ContentType, ac.Content.Sender, labelFramedContentTBS, err)
	}
	return nil
}

// proposalRef computes the ProposalRef of a proposal sent in ac (RFC 9420 §5.2).
func proposalRef(s *suite, ac *authenticatedContent) ([]byte, error) {
	b, err := ac.Encode()
	if err != nil {
		return nil, err
	}
	return s.refHash(labelProposalRef, b), nil
}

// Ref returns the KeyPackageRef of kp (RFC 9420 §5.2), computed with kp's cipher suite.
func (kp *KeyPackage) Ref() ([]byte, error) {
	s, err := kp.CipherSuite.impl()
	if err != nil {
		return nil, err
	}
	b, err := kp.Encode()
	if err != nil {
		return nil, err
	}
	return s.refHash(labelKeyPackageRef, b), nil
}

// membershipTag computes the membership tag of ac (RFC 9420 §6.2): MAC(membership_key,
// AuthenticatedContentTBM), the TBM being FramedContentTBS followed by FramedContentAuthData.
func membershipTag(s *suite, membershipKey []byte, ac *authenticatedContent, ctx []byte) ([]byte, error) {
	enc, err := ac.encoding(ctx)
	if err != nil {
		return nil, err
	}
	tbs, err := enc.tbsInput()
	if err != nil {
		return nil, err
	}
	m := hmac.New(s.newHash, membershipKey)
	m.Write(tbs)
	writeAuth(m, &ac.Auth, ac.Content.ContentType)
	return m.Sum(make([]byte, 0, s.nh)), nil
}

// checkSenderContent enforces the content types RFC 9420 §6 allows per sender type: external and
// new_member_proposal senders send proposals only, new_member_commit senders commits only.
func checkSenderContent(fc *FramedContent) error {
	switch fc.Sender.Type {
	case SenderTypeExternal, SenderTypeNewMemberProposal:
		if fc.ContentType != ContentTypeProposal {
			return fmt.Errorf("%w: %s sender with %s content", ErrNotAllowed, fc.Sender.Type, fc.ContentType)
		}
	case SenderTypeNewMemberCommit:
		if fc.ContentType != ContentTypeCommit {
			return fmt.Errorf("%w: %s sender with %s content", ErrNotAllowed, fc.Sender.Type, fc.ContentType)
		}
	}
	return nil
}

// protectPublic wraps ac in a PublicMessage, adding the membership tag for member senders
// (RFC 9420 §6.2); ctx is the encoded GroupContext.
func protectPublic(s *suite, ac *authenticatedContent, ctx []byte, membershipKey []byte) (*PublicMessage, error) {
	if ac.WireFormat != WireFormatPublicMessage {
		return nil, fmt.Errorf("%w: content signed for %s sent as a PublicMessage", ErrNotAllowed, ac.WireFormat)
	}
	if ac.Content.ContentType == ContentTypeApplication {
		return nil, fmt.Errorf("%w: application data in a PublicMessage", ErrNotAllowed)
	}
	if err := checkSenderContent(&ac.Content); err != nil {
		return nil, err
	}
	pm := &PublicMessage{Content: ac.Content, Auth: ac.Auth}
	if ac.Content.Sender.Type == SenderTypeMember {
		tag, err := membershipTag(s, membershipKey, ac, ctx)
		if err != nil {
			return nil, err
		}
		pm.MembershipTag = tag
	}
	return pm, nil
}

// unprotectPublic checks a received PublicMessage against the current epoch (group ID, epoch and, for
// member senders, the membership tag) and returns its AuthenticatedContent. The caller verifies the
// signature with verifyContent once it knows the sender's signature key. gc is the GroupContext,
// ctx its encoding.
func unprotectPublic(s *suite, pm *PublicMessage, gc *GroupContext, ctx []byte, membershipKey []byte) (*authenticatedContent, error) {
	ac, err := publicContent(pm, gc)
	if err != nil {
		return nil, err
	}
	if pm.Content.Sender.Type == SenderTypeMember {
		tag, err := membershipTag(s, membershipKey, ac, ctx)
		if err != nil {
			return nil, err
		}
		if !hmac.Equal(tag, pm.MembershipTag) {
			return nil, ErrMembershipTag
		}
	}
	return ac, nil
}

// publicContent checks a received PublicMessage against the current epoch (group ID, epoch, the
// content types its sender may send) and returns its AuthenticatedContent; it checks neither the
// membership tag (unprotectPublic does) nor the signature.
func publicContent(pm *PublicMessage, ctx *GroupContext) (*authenticatedContent, error) {
	if !bytes.Equal(pm.Content.GroupID, ctx.GroupID) || pm.Content.Epoch != ctx.Epoch {
		return nil, fmt.Errorf("%w: PublicMessage for epoch %d", ErrWrongGroup, pm.Content.Epoch)
	}
	if pm.Content.ContentType == ContentTypeApplication {
		return nil, fmt.Errorf("%w: application data in a PublicMessage", ErrNotAllowed)
	}
	if err := checkSenderContent(&pm.Content); err != nil {
		return nil, err
	}
	return &authenticatedContent{WireFormat: WireFormatPublicMessage, Content: pm.Content, Auth: pm.Auth, sizeHint: pm.size}, nil
}

// ratchetFor returns the secret-tree ratchet used for a content type (RFC 9420 §9.1).
func ratchetFor(ct ContentType) ratchetType {
	if ct == ContentTypeApplication {
		return ratchetApplication
	}
	return ratchetHandshake
}

// privateContentAAD encodes PrivateContentAAD (RFC 9420 §6.3.1).
func privateContentAAD(groupID []byte, epoch uint64, ct ContentType, authenticatedData []byte) ([]byte, error) {
	var w tlspl.Writer
	w.Opaque(groupID)
	w.Uint64(epoch)
	w.Uint8(uint8(ct))
	w.Opaque(authenticatedData)
	return w.Bytes()
}

// senderDataAAD encodes SenderDataAAD (RFC 9420 §6.3.2).
func senderDataAAD(groupID []byte, epoch uint64, ct ContentType) ([]byte, error) {
	var w tlspl.Writer
	w.Opaque(groupID)
	w.Uint64(epoch)
	w.Uint8(uint8(ct))
	return w.Bytes()
}

// applyReuseGuard XORs the reuse guard into the first four bytes of a copy of nonce (RFC 9420 §6.3.1).
func applyReuseGuard(nonce []byte, guard [4]byte) []byte {
	n := append([]byte(nil), nonce...)
	for i := range guard {
		n[i] ^= guard[i]
	}
	return n
}

// paddingFor returns how many zero bytes make a PrivateMessageContent of n bytes a multiple of padTo
// (no padding when padTo <= 1).
func paddingFor(n, padTo int) int {
	if padTo <= 1 {
		return 0
	}
	if r := n % padTo; r != 0 {
		return padTo - r
	}
	return 0
}

// protectPrivate encrypts ac, signed for the private wire format by a member, into a PrivateMessage
// (RFC 9420 §6.3): it takes the next key of the sender's ratchet from tree, pads the content to a
// multiple of padTo bytes, and encrypts the sender data under senderDataSecret.
func protectPrivate(s *suite, ac *authenticatedContent, tree *secretTree, senderDataSecret []byte, padTo int) (*PrivateMessage, error) {
	fc := &ac.Content
	if ac.WireFormat != WireFormatPrivateMessage {
		return nil, fmt.Errorf("%w: content signed for %s sent as a PrivateMessage", ErrNotAllowed, ac.WireFormat)
	}
	if fc.Sender.Type != SenderTypeMember {
		return nil, fmt.Errorf("%w: %s sender in a PrivateMessage", ErrNotAllowed, fc.Sender.Type)
	}
	pmc := &privateMessageContent{
		ContentType:     fc.ContentType,
		ApplicationData: fc.ApplicationData,
		Proposal:        fc.Proposal,
		Commit:          fc.Commit,
		Auth:            ac.Auth,
	}
	var w tlspl.Writer
	pmc.MarshalTLS(&w)
	unpadded := w.Len()
	if pmc.Padding = paddingFor(unpadded, padTo); pmc.Padding > 0 {
		w.Raw(make([]byte, pmc.Padding))
	}
	plaintext, err := w.Bytes()
	if err != nil {
		return nil, fmt.Errorf("mls: encode PrivateMessageContent: %w", err)
	}
	aad, err := privateContentAAD(fc.GroupID, fc.Epoch, fc.ContentType, fc.AuthenticatedData)
	if err != nil {
		return nil, fmt.Errorf("mls: encode PrivateContentAAD: %w", err)
	}

	key, nonce, generation, err := tree.nextKey(leafIndex(fc.Sender.Index), ratchetFor(fc.ContentType))
	if err != nil {
		return nil, err
	}
	defer zero(key)
	sd := SenderData{LeafIndex: fc.Sender.Index, Generation: generation}
	guard, err := randomBytes(nil, 4)
	if err != nil {
		return nil, err
	}
	copy(sd.ReuseGuard[:], guard)
	ciphertext, err := s.seal(key, applyReuseGuard(nonce, sd.ReuseGuard), aad, plaintext)
	if err != nil {
		return nil, err
	}

	sdKey, sdNonce := s.senderDataKeyNonce(senderDataSecret, ciphertext)
	defer zero(sdKey)
	sdAAD, err := senderDataAAD(fc.GroupID, fc.Epoch, fc.ContentType)
	if err != nil {
		return nil, fmt.Errorf("mls: encode SenderDataAAD: %w", err)
	}
	sdPlain, err := tlspl.Marshal(&sd)
	if err != nil {
		return nil, fmt.Errorf("mls: encode SenderData: %w", err)
	}
	encSD, err := s.seal(sdKey, sdNonce, sdAAD, sdPlain)
	if err != nil {
		return nil, err
	}
	return &PrivateMessage{
		GroupID:             fc.GroupID,
		Epoch:               fc.Epoch,
		ContentType:         fc.ContentType,
		AuthenticatedData:   fc.AuthenticatedData,
		EncryptedSenderData: encSD,
		Ciphertext:          ciphertext,
	}, nil
}

// unprotectPrivate decrypts a PrivateMessage of the current epoch (RFC 9420 §6.3) and returns its
// AuthenticatedContent, with the sender taken from the decrypted sender data. The key used is
// deleted from tree, so a replayed message fails. The caller checks that the sender leaf is a member
// and verifies the signature with verifyContent.
func unprotectPrivate(s *suite, pm *PrivateMessage, ctx *GroupContext, tree *secretTree, senderDataSecret []byte) (*authenticatedContent, error) {
	if !bytes.Equal(pm.GroupID, ctx.GroupID) || pm.Epoch != ctx.Epoch {
		return nil, fmt.Errorf("%w: PrivateMessage for epoch %d", ErrWrongGroup, pm.Epoch)
	}
	if !pm.ContentType.valid() {
		return nil, fmt.Errorf("%w: content type %d", ErrUnknownEnum, uint8(pm.ContentType))
	}
	sdKey, sdNonce := s.senderDataKeyNonce(senderDataSecret, pm.Ciphertext)
	defer zero(sdKey)
	sdAAD, err := senderDataAAD(pm.GroupID, pm.Epoch, pm.ContentType)
	if err != nil {
		return nil, fmt.Errorf("mls: encode SenderDataAAD: %w", err)
	}
	sdPlain, err := s.open(sdKey, sdNonce, sdAAD, pm.EncryptedSenderData)
	if err != nil {
		return nil, fmt.Errorf("mls: sender data: %w", err)
	}
	var sd SenderData
	if err := tlspl.Unmarshal(sdPlain, &sd); err != nil {
		return nil, fmt.Errorf("mls: decode SenderData: %w", err)
	}

	key, nonce, _, err := tree.keyForGeneration(leafIndex(sd.LeafIndex), ratchetFor(pm.ContentType), sd.Generation)
	if err != nil {
		return nil, fmt.Errorf("mls: PrivateMessage from leaf %d generation %d: %w", sd.LeafIndex, sd.Generation, err)
	}
	defer zero(key)
	aad, err := privateContentAAD(pm.GroupID, pm.Epoch, pm.ContentType, pm.AuthenticatedData)
	if err != nil {
		return nil, fmt.Errorf("mls: encode PrivateContentAAD: %w", err)
	}
	plaintext, err := s.open(key, applyReuseGuard(nonce, sd.ReuseGuard), aad, pm.Ciphertext)
	if err != nil {
		return nil, fmt.Errorf("mls: PrivateMessage content: %w", err)
	}
	pmc := &privateMessageContent{ContentType: pm.ContentType}
	if err := tlspl.Unmarshal(plaintext, pmc); err != nil {
		return nil, fmt.Errorf("mls: decode PrivateMessageContent: %w", err)
	}
	return &authenticatedContent{
		WireFormat: WireFormatPrivateMessage,
		Content: FramedContent{
			GroupID:           pm.GroupID,
			Epoch:             pm.Epoch,
			Sender:            Sender{Type: SenderTypeMember, Index: sd.LeafIndex},
			AuthenticatedData: pm.AuthenticatedData,
			ContentType:       pm.ContentType,
			ApplicationData:   pmc.ApplicationData,
			Proposal:          pmc.Proposal,
			Commit:            pmc.Commit,
		},
		Auth:       pmc.Auth,
		generation: sd.Generation,
	}, nil
}
