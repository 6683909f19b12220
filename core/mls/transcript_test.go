package mls

import (
	"testing"
)

func init() { vectorLayouts["transcript-hashes.json"] = testTranscriptHashVectors }

type transcriptHashCase struct {
	suiteField
	ConfirmationKey              hexBytes `json:"confirmation_key"`
	AuthenticatedContent         hexBytes `json:"authenticated_content"`
	InterimTranscriptHashBefore  hexBytes `json:"interim_transcript_hash_before"`
	ConfirmedTranscriptHashAfter hexBytes `json:"confirmed_transcript_hash_after"`
	InterimTranscriptHashAfter   hexBytes `json:"interim_transcript_hash_after"`
}

func testTranscriptHashVectors(t *testing.T, raw []byte) {
	runCases(t, raw, func(t *testing.T, s *suite, c *transcriptHashCase) {
		input, tag, err := s.splitCommitAuthenticatedContent(c.AuthenticatedContent)
		if err != nil {
			t.Fatal(err)
		}
		confirmed := s.confirmedTranscriptHash(c.InterimTranscriptHashBefore, input)
		equalHex(t, "confirmed_transcript_hash_after", confirmed, c.ConfirmedTranscriptHashAfter)
		equalHex(t, "confirmation_tag", s.confirmationTag(c.ConfirmationKey, confirmed), tag)
		if !s.verifyConfirmationTag(c.ConfirmationKey, confirmed, tag) {
			t.Error("verifyConfirmationTag rejected the vector's tag")
		}
		equalHex(t, "interim_transcript_hash_after", s.interimTranscriptHash(confirmed, tag), c.InterimTranscriptHashAfter)

		// The same from the decoded struct.
		ac, err := decodeAuthenticatedContent(c.AuthenticatedContent)
		if err != nil {
			t.Fatalf("decoding authenticated_content: %v", err)
		}
		conf2, interim2, err := s.nextTranscriptHashes(c.InterimTranscriptHashBefore, ac, nil)
		if err != nil {
			t.Fatal(err)
		}
		equalHex(t, "confirmed (from struct)", conf2, c.ConfirmedTranscriptHashAfter)
		equalHex(t, "interim (from struct)", interim2, c.InterimTranscriptHashAfter)
		equalHex(t, "confirmation tag (from struct)", ac.Auth.ConfirmationTag, tag)
	})
}

func TestSplitCommitAuthenticatedContentRejects(t *testing.T) {
	t.Parallel()
	s, _ := MLS128DHKEMX25519AES128GCMSHA256Ed25519.impl()
	if _, _, err := s.nextTranscriptHashes(nil, &authenticatedContent{Content: FramedContent{ContentType: ContentTypeApplication}}, nil); err == nil {
		t.Error("transcript hash of application content accepted")
	}
	if _, _, err := s.splitCommitAuthenticatedContent(make([]byte, 10)); err == nil {
		t.Error("short input accepted")
	}
	b := make([]byte, 100)
	b[100-33] = 31 // wrong tag length prefix
	if _, _, err := s.splitCommitAuthenticatedContent(b); err == nil {
		t.Error("wrong tag length accepted")
	}
}
