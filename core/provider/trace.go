package provider

import (
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
)

// The debug log follows one message through the endpoint: "mimi.out envelope handled" and
// "message submitted to the hub" at the sender's provider, "message sequenced" at the hub,
// "inbox: message read" where it is decrypted for the adapters. The ciphertext digest is the same
// at the follower that submits a message and at the hub that sequences it, and the message ID is
// the same at both ends, so a message's order can be checked hop by hop. The values are computed
// only when debug records are written.

// hexValue logs bytes in hex.
type hexValue []byte

// LogValue implements slog.LogValuer.
func (h hexValue) LogValue() slog.Value { return slog.StringValue(hex.EncodeToString(h)) }

// digestValue logs a short hash of an encoded MLS message.
type digestValue []byte

// LogValue implements slog.LogValuer.
func (d digestValue) LogValue() slog.Value {
	sum := sha256.Sum256(d)
	return slog.StringValue(hex.EncodeToString(sum[:6]))
}
