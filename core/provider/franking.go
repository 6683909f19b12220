package provider

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/abuse"
	"github.com/mimi-gateway/mimi-gateway/core/content"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/store"
	"github.com/mimi-gateway/mimi-gateway/core/tlspl"
)

// Franking (protocol-06 §5.4.1, content §4.6), so that a message can be reported and its hub can
// tell that it really sent it:
//
//   - Our clients put franking_tag = HMAC-SHA256(salt, application_data) in the frank_aad Safe
//     AAD item (0x0020) of every PrivateMessage they send (the salt is the MIMI content's).
//   - As hub we frank every accepted application message that carries a tag:
//     server_frank = HMAC-SHA256(hub_key, franking_tag || ServerFrankingContext) with a hub-local
//     secret, signed (FrankingIntegrityTBS) with the hub's franking key; the frank goes with the
//     fanout (and the submitMessage answer).
//   - Receivers keep the content with its frank for a week (core/abuse evidence).
//   - A report (reportAbuse) names messages by content, frank and accepted timestamp; the hub
//     recomputes the tag from the content's salt, its server_frank for the content's sender and
//     room, and checks its signature; a report any of whose messages fails is refused (403).
//
// Reading R33 (ours): the franking agent's key is not announced in the GroupContext
// (component 0x0021); only the hub verifies franks, against its own key.

const (
	// componentFrankAAD is the frank_aad Safe AAD component.
	componentFrankAAD mls.ComponentID = 0x0020
	// frankingLabel signs FrankingIntegrityTBS.
	frankingLabel = "FrankingIntegrityTBS"
	// kvFranking holds the hub's franking secret and key pair.
	kvFranking = "franking"
)

// frankingTag is HMAC-SHA256(salt, appData).
func frankingTag(salt, appData []byte) []byte {
	h := hmac.New(sha256.New, salt)
	h.Write(appData)
	return h.Sum(nil)
}

// frankAAD returns the Safe AAD with the franking tag of MIMI content c sent as appData (c
// framed or not); content that does not decode is sent without one.
func frankAAD(c, appData []byte) ([]byte, error) {
	msg, err := content.Decode(c)
	if err != nil {
		return nil, nil
	}
	return mls.EncodeSafeAAD([]mls.SafeAADItem{{ID: componentFrankAAD, Data: frankingTag(msg.Salt[:], appData)}})
}

// frankingTagOf returns the franking tag in m's Safe AAD, if any.
func frankingTagOf(m *mls.MLSMessage) []byte {
	if m == nil || m.PrivateMessage == nil || len(m.PrivateMessage.AuthenticatedData) == 0 {
		return nil
	}
	items, err := mls.DecodeSafeAAD(m.PrivateMessage.AuthenticatedData)
	if err != nil {
		return nil
	}
	for _, it := range items {
		if it.ID == componentFrankAAD && len(it.Data) == sha256.Size {
			return it.Data
		}
	}
	return nil
}

// serverFrankingContext encodes ServerFrankingContext.
func serverFrankingContext(sender event.UserURI, room event.RoomURI, ts uint64) []byte {
	w := tlspl.NewWriter(64 + len(sender) + len(room))
	w.Opaque([]byte(sender))
	w.Opaque([]byte(room))
	w.Uint64(ts)
	b, _ := w.Bytes()
	return b
}

// franking is the hub's franking secret and signature key.
type franking struct {
	key    []byte
	signer *mls.Signer
}

// frankingKeys returns (creating them once) the hub's franking secret and key pair.
func (p *Provider) frankingKeys(ctx context.Context, tx *store.Tx) (*franking, error) {
	kv := tx.KV(kvScope)
	e, err := kv.Get(ctx, kvFranking)
	if err == nil && len(e.Value) > 34 {
		n := int(e.Value[32])<<8 | int(e.Value[33])
		if 34+n < len(e.Value) {
			return &franking{key: e.Value[:32], signer: &mls.Signer{CipherSuite: p.cfg.CipherSuite, Private: e.Value[34 : 34+n], Public: e.Value[34+n:]}}, nil
		}
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("provider: franking key: %w", err)
	}
	s, err := mls.GenerateSigner(p.cfg.CipherSuite)
	if err != nil {
		return nil, err
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	v := append(append(key, byte(len(s.Private)>>8), byte(len(s.Private))), s.Private...)
	v = append(v, s.Public...)
	if _, err := kv.CompareAndSwap(ctx, kvFranking, 0, v); err != nil {
		return nil, fmt.Errorf("provider: store franking key: %w", err)
	}
	return &franking{key: key, signer: s}, nil
}

// serverFrank computes server_frank and the signed TBS of a tag.
func (f *franking) serverFrank(tag []byte, fctx []byte) [protocol.FrankLength]byte {
	h := hmac.New(sha256.New, f.key)
	h.Write(tag)
	h.Write(fctx)
	var out [protocol.FrankLength]byte
	copy(out[:], h.Sum(nil))
	return out
}

func integrityTBS(sf [protocol.FrankLength]byte, cs mls.CipherSuite, fctx []byte) []byte {
	b := append([]byte(nil), sf[:]...)
	b = append(b, byte(cs>>8), byte(cs))
	return append(b, fctx...)
}

// frank franks an application message the hub accepted at ts from sender in room (nil when it
// carries no franking tag).
func (p *Provider) frank(ctx context.Context, tx *store.Tx, sender event.UserURI, room event.RoomURI, ts uint64, m *mls.MLSMessage) (*protocol.Frank, error) {
	tag := frankingTagOf(m)
	if tag == nil {
		return nil, nil
	}
	f, err := p.frankingKeys(ctx, tx)
	if err != nil {
		return nil, err
	}
	fctx := serverFrankingContext(sender, room, ts)
	sf := f.serverFrank(tag, fctx)
	sig, err := f.signer.CipherSuite.SignWithLabel(f.signer.Private, frankingLabel, integrityTBS(sf, f.signer.CipherSuite, fctx))
	if err != nil {
		return nil, fmt.Errorf("provider: sign frank: %w", err)
	}
	return &protocol.Frank{ServerFrank: sf, FrankingSignatureCipherSuite: f.signer.CipherSuite, FrankingIntegritySignature: sig}, nil
}

// encodeFrank is a frank's wire form (kept with received messages).
func encodeFrank(f *protocol.Frank) ([]byte, error) {
	w := tlspl.NewWriter(128)
	f.MarshalTLS(w)
	return w.Bytes()
}

func decodeFrank(b []byte) (*protocol.Frank, error) {
	r := tlspl.NewReader(b)
	f := new(protocol.Frank)
	f.UnmarshalTLS(r)
	if err := r.Finish(); err != nil {
		return nil, err
	}
	return f, nil
}

// errForgedFrank is a reported message whose frank this hub did not make.
var errForgedFrank = errors.New("provider: the frank does not verify")

// verifyFrank checks, as the hub of room, that f is our frank of MIMI content c accepted at ts:
// the content names room and its sender, its tag (framed as our rooms frame, or not) and the
// context give f's server_frank, and f's signature is ours. It returns the content's sender.
func (p *Provider) verifyFrank(ctx context.Context, room event.RoomURI, c []byte, f *protocol.Frank, ts uint64) (event.UserURI, error) {
	msg, err := content.Decode(c)
	if err != nil {
		return "", fmt.Errorf("%w: content: %w", errForgedFrank, err)
	}
	sender, err := event.ParseUserURI(msg.Extensions.SenderURI())
	if err != nil || msg.Extensions.RoomURI() != string(room) {
		return "", fmt.Errorf("%w: the content does not name its sender and this room", errForgedFrank)
	}
	var keys *franking
	if err := p.st.InTx(ctx, func(tx *store.Tx) error { keys, err = p.frankingKeys(ctx, tx); return err }); err != nil {
		return "", err
	}
	if f.FrankingSignatureCipherSuite != keys.signer.CipherSuite {
		return "", fmt.Errorf("%w: cipher suite %d", errForgedFrank, f.FrankingSignatureCipherSuite)
	}
	fctx := serverFrankingContext(sender, room, ts)
	framed, _ := (&mls.ApplicationFraming{MediaType: mls.MediaType{Type: mediaTypeMIMI}, Content: c}).Encode()
	ok := false
	for _, appData := range [][]byte{framed, c} {
		sf := keys.serverFrank(frankingTag(msg.Salt[:], appData), fctx)
		if hmac.Equal(sf[:], f.ServerFrank[:]) {
			ok = true
		}
	}
	if !ok {
		return "", fmt.Errorf("%w: server_frank", errForgedFrank)
	}
	if err := keys.signer.CipherSuite.VerifyWithLabel(keys.signer.Public, frankingLabel, integrityTBS(f.ServerFrank, f.FrankingSignatureCipherSuite, fctx), f.FrankingIntegritySignature); err != nil {
		return "", fmt.Errorf("%w: signature: %w", errForgedFrank, err)
	}
	return sender, nil
}

// keepFrank keeps the frank of a fanned-out message for when it is read (in the tx that stores
// the message).
func (p *Provider) keepFrank(ctx context.Context, tx *store.Tx, room event.RoomURI, m *mls.MLSMessage, f *protocol.Frank, ts uint64) error {
	if f == nil {
		return nil
	}
	raw, err := m.Encode()
	if err != nil {
		return err
	}
	fb, err := encodeFrank(f)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(raw)
	return abuse.PutFrank(ctx, tx, room, sum[:], fb, ts, p.now())
}
