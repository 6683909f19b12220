package mls

// Transcript hashes (RFC 9420 §8.2), the confirmation tag (§6.1) and the membership tag (§6.2).
//
//	confirmed_transcript_hash_[n] = Hash(interim_transcript_hash_[n-1] || ConfirmedTranscriptHashInput_[n])
//	interim_transcript_hash_[n]   = Hash(confirmed_transcript_hash_[n] || InterimTranscriptHashInput_[n])
//
// ConfirmedTranscriptHashInput is struct { WireFormat wire_format; FramedContent content; opaque
// signature<V>; }, that is, the encoded AuthenticatedContent of the commit without its trailing
// confirmation_tag; InterimTranscriptHashInput is struct { MAC confirmation_tag; } (opaque<V>).

import (
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

// confirmedTranscriptHash computes the confirmed transcript hash from the previous epoch's interim
// transcript hash (empty for a new group) and the encoded ConfirmedTranscriptHashInput.
func (s *suite) confirmedTranscriptHash(interimBefore, confirmedInput []byte) []byte {
	h := s.newHash()
	h.Write(interimBefore)
	h.Write(confirmedInput)
	return h.Sum(make([]byte, 0, s.nh))
}

// interimTranscriptHash computes the interim transcript hash from the confirmed transcript hash and
// the commit's confirmation tag.
func (s *suite) interimTranscriptHash(confirmed, confirmationTag []byte) []byte {
	h := s.newHash()
	h.Write(confirmed)
	h.Write(appendVarint(nil, len(confirmationTag)))
	h.Write(confirmationTag)
	return h.Sum(make([]byte, 0, s.nh))
}

// confirmationTag computes confirmation_tag = MAC(confirmation_key, confirmed_transcript_hash).
func (s *suite) confirmationTag(confirmationKey, confirmedTranscriptHash []byte) []byte {
	return s.mac(confirmationKey, confirmedTranscriptHash)
}

// verifyConfirmationTag checks a received confirmation tag in constant time.
func (s *suite) verifyConfirmationTag(confirmationKey, confirmedTranscriptHash, tag []byte) bool {
	return s.verifyMAC(confirmationKey, confirmedTranscriptHash, tag)
}

// membershipTag computes membership_tag = MAC(membership_key, AuthenticatedContentTBM), where tbm is
// the encoded struct { FramedContentTBS content_tbs; FramedContentAuthData auth; }.
func (s *suite) membershipTag(membershipKey, tbm []byte) []byte {
	return s.mac(membershipKey, tbm)
}

// verifyMembershipTag checks a PublicMessage's membership tag in constant time.
func (s *suite) verifyMembershipTag(membershipKey, tbm, tag []byte) bool {
	return s.verifyMAC(membershipKey, tbm, tag)
}

// splitCommitAuthenticatedContent splits the encoding of an AuthenticatedContent that carries a
// Commit into its ConfirmedTranscriptHashInput (everything before the confirmation tag) and the
// confirmation tag, which is its last field, an Nh-byte opaque<V>. It lets the transcript be hashed
// without decoding the Commit.
func (s *suite) splitCommitAuthenticatedContent(ac []byte) (confirmedInput, tag []byte, err error) {
	prefix := appendVarint(nil, s.nh)
	n := len(prefix) + s.nh
	if len(ac) < n+2 {
		return nil, nil, fmt.Errorf("%w: AuthenticatedContent of %d bytes too short for a confirmation tag", tlspl.ErrShort, len(ac))
	}
	cut := len(ac) - n
	for i, b := range prefix {
		if ac[cut+i] != b {
			return nil, nil, fmt.Errorf("%w: AuthenticatedContent does not end with a %d-byte confirmation tag", tlspl.ErrInvalid, s.nh)
		}
	}
	return ac[:cut], ac[cut+len(prefix):], nil
}

// confirmedTranscriptHashOf computes the confirmed transcript hash after the commit in ac, from
// the interim transcript hash before it: Hash(interim || wire_format || FramedContent ||
// signature<V>), hashing the content's single encoding (ctx: the encoded GroupContext).
func (s *suite) confirmedTranscriptHashOf(interimBefore []byte, ac *authenticatedContent, ctx []byte) ([]byte, error) {
	if ac.Content.ContentType != ContentTypeCommit {
		return nil, fmt.Errorf("%w: transcript input from %s content, want a commit", ErrMalformed, ac.Content.ContentType)
	}
	enc, err := ac.encoding(ctx)
	if err != nil {
		return nil, err
	}
	h := s.newHash()
	h.Write(interimBefore)
	h.Write(enc.wfFC)
	h.Write(appendVarint(nil, len(ac.Auth.Signature)))
	h.Write(ac.Auth.Signature)
	return h.Sum(make([]byte, 0, s.nh)), nil
}

// nextTranscriptHashes returns the confirmed and interim transcript hashes after a commit, given
// the interim transcript hash before it (empty for a new group) and the commit's
// AuthenticatedContent (whose Auth.ConfirmationTag is used for the interim hash).
func (s *suite) nextTranscriptHashes(interimBefore []byte, ac *authenticatedContent, ctx []byte) (confirmed, interim []byte, err error) {
	if confirmed, err = s.confirmedTranscriptHashOf(interimBefore, ac, ctx); err != nil {
		return nil, nil, err
	}
	return confirmed, s.interimTranscriptHash(confirmed, ac.Auth.ConfirmationTag), nil
}
