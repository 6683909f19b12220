package mls

// The FramedContent of a message encoded once. Three values cover it (RFC 9420 §6.1, §6.2, §8.2):
// the signature (SignWithLabel over FramedContentTBS), the membership tag (MAC over
// FramedContentTBS || FramedContentAuthData) and the confirmed transcript hash (over wire_format ||
// FramedContent || signature). A commit's FramedContent holds its whole UpdatePath, N HPKE
// ciphertexts in a blank tree, so encoding it three times cost more than the cryptography of
// processing it. contentEncoding lays the three inputs out in one buffer:
//
//	buf = vl("MLS 1.0 FramedContentTBS") || vl-length || FramedContentTBS
//	FramedContentTBS = version || wire_format || FramedContent || [GroupContext]
//
// so the signature input, the TBS and the transcript's head are slices of it.

import (
	"bytes"
	"fmt"
	"hash"

	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

// contentEncoding is one FramedContent encoded for a wire format and a GroupContext.
type contentEncoding struct {
	wf       WireFormat
	needsCtx bool   // the sender's TBS holds the GroupContext
	ctx      []byte // the encoded GroupContext the TBS holds

	buf  []byte
	sign []byte // SignContent: the input of SignWithLabel/VerifyWithLabel
	tbs  []byte // FramedContentTBS
	wfFC []byte // wire_format || FramedContent: the head of ConfirmedTranscriptHashInput
	// noCtx is set when the sender needs a GroupContext in its TBS and none was given: only wfFC
	// is usable then (the transcript hash needs no context).
	noCtx error
}

// signInput returns the input of SignWithLabel over FramedContentTBS.
func (e *contentEncoding) signInput() ([]byte, error) { return e.sign, e.noCtx }

// tbsInput returns FramedContentTBS.
func (e *contentEncoding) tbsInput() ([]byte, error) { return e.tbs, e.noCtx }

// signContentLabel is the label of the FramedContentTBS signature with its prefix.
const signContentLabel = labelPrefix + labelFramedContentTBS

// encodeContent encodes fc for wire format wf; ctx is the encoded GroupContext, which the TBS of
// member and new_member_commit senders holds (without it, only the transcript input is usable).
// sizeHint is the expected size of the FramedContent (0 when unknown).
func encodeContent(wf WireFormat, fc *FramedContent, ctx []byte, sizeHint int) (*contentEncoding, error) {
	var noCtx error
	needsCtx := fc.Sender.Type == SenderTypeMember || fc.Sender.Type == SenderTypeNewMemberCommit
	switch {
	case !needsCtx:
		ctx = nil
	case ctx == nil:
		noCtx = fmt.Errorf("mls: FramedContentTBS for a %s sender needs the group context", fc.Sender.Type)
	}
	// Room for the SignContent head in front: the label as opaque<V> and the TBS length as the
	// longest varint; the head is written right-aligned once the TBS length is known.
	gap := varintLen(len(signContentLabel)) + len(signContentLabel) + 4
	w := tlspl.NewWriter(gap + 4 + sizeHint + len(ctx) + 64)
	w.Raw(make([]byte, gap))
	w.Uint16(uint16(ProtocolVersionMLS10))
	w.Uint16(uint16(wf))
	fc.MarshalTLS(w)
	fcEnd := w.Len()
	w.Raw(ctx)
	b, err := w.Bytes()
	if err != nil {
		return nil, fmt.Errorf("mls: encode FramedContentTBS: %w", err)
	}
	tbs := b[gap:]
	if len(tbs) > tlspl.MaxVarint {
		return nil, fmt.Errorf("%w: FramedContentTBS of %d bytes", tlspl.ErrTooLarge, len(tbs))
	}
	head := appendVarint(nil, len(signContentLabel))
	head = append(head, signContentLabel...)
	head = appendVarint(head, len(tbs))
	start := gap - len(head)
	copy(b[start:], head)
	return &contentEncoding{wf: wf, needsCtx: needsCtx, ctx: ctx, buf: b, sign: b[start:], tbs: tbs, wfFC: b[gap+2 : fcEnd], noCtx: noCtx}, nil
}

// varintLen is the length of the MLS varint encoding of n (n < 2^30).
func varintLen(n int) int {
	switch {
	case n < 1<<6:
		return 1
	case n < 1<<14:
		return 2
	}
	return 4
}

// encoding returns ac's content encoded for the GroupContext ctx, computing it on first use. The
// package encodes a message's content once and does not change it afterwards; a later call with
// another wire format or context encodes again.
func (ac *authenticatedContent) encoding(ctx []byte) (*contentEncoding, error) {
	if e := ac.enc; e != nil && e.wf == ac.WireFormat && (!e.needsCtx || bytes.Equal(e.ctx, ctx)) {
		return e, nil
	}
	e, err := encodeContent(ac.WireFormat, &ac.Content, ctx, ac.sizeHint)
	if err != nil {
		return nil, err
	}
	ac.enc = e
	return e, nil
}

// writeAuth writes FramedContentAuthData (the part of AuthenticatedContentTBM after the TBS).
func writeAuth(h hash.Hash, auth *FramedContentAuthData, ct ContentType) {
	h.Write(appendVarint(nil, len(auth.Signature)))
	h.Write(auth.Signature)
	if ct == ContentTypeCommit {
		h.Write(appendVarint(nil, len(auth.ConfirmationTag)))
		h.Write(auth.ConfirmationTag)
	}
}
