package ops

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"log/slog"
)

// MinPseudonymKeyLen is the shortest key NewPseudonymizer accepts.
const MinPseudonymKeyLen = 16

// Pseudonymizer turns user and room identifiers into stable keyed
// pseudonyms for logs, so operators can follow one user or room through the
// logs without the logs naming them (a requirement for hospital and agency
// deployments). The same key gives the same pseudonym across restarts and
// replicas; without the key a pseudonym cannot be reversed or confirmed by
// hashing guessed IDs. It is safe for concurrent use.
type Pseudonymizer struct {
	key   []byte
	plain bool
}

// NewPseudonymizer returns a Pseudonymizer with key (at least
// MinPseudonymKeyLen bytes; keep it secret, e.g. a Secret from the
// configuration). A nil key draws a random one: pseudonyms are then stable
// only within this process.
func NewPseudonymizer(key []byte) (*Pseudonymizer, error) {
	if key == nil {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("ops: pseudonym key: %w", err)
		}
	}
	if len(key) < MinPseudonymKeyLen {
		return nil, fmt.Errorf("ops: pseudonym key is %d bytes, want at least %d", len(key), MinPseudonymKeyLen)
	}
	return &Pseudonymizer{key: append([]byte(nil), key...)}, nil
}

// PlainIDs returns a Pseudonymizer that logs identifiers unchanged, for
// development setups where operators chose to see real IDs.
func PlainIDs() *Pseudonymizer { return &Pseudonymizer{plain: true} }

var pseudonymEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// Pseudonym returns "p:" followed by 16 base32 characters (80 bits of
// HMAC-SHA-256 over id), or id itself for PlainIDs.
func (p *Pseudonymizer) Pseudonym(id string) string {
	if p.plain {
		return id
	}
	m := hmac.New(sha256.New, p.key)
	m.Write([]byte(id))
	return "p:" + pseudonymEncoding.EncodeToString(m.Sum(nil)[:10])
}

// Value returns a slog.LogValuer that renders id as its pseudonym, computed
// only if the record is actually logged:
//
//	log.Info("message relayed", "room", pz.Value(string(roomID)))
func (p *Pseudonymizer) Value(id string) slog.LogValuer { return pseudonymValue{p: p, id: id} }

type pseudonymValue struct {
	p  *Pseudonymizer
	id string
}

// LogValue implements slog.LogValuer.
func (v pseudonymValue) LogValue() slog.Value { return slog.StringValue(v.p.Pseudonym(v.id)) }

var _ slog.LogValuer = pseudonymValue{}
