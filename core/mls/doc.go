// Package mls implements Messaging Layer Security (RFC 9420) for mimi-gateway, with the MLS
// extensions MIMI needs (draft-ietf-mls-extensions).
//
// The cryptographic core is built on the Go standard library (crypto/hpke, crypto/hkdf, crypto/ecdh,
// crypto/ed25519, crypto/ecdsa), golang.org/x/crypto/chacha20poly1305 for the ChaCha20-Poly1305
// suites, and github.com/cloudflare/circl for X448 and Ed448 (cipher suites 4 and 6). All seven
// cipher suites of RFC 9420 §17.1 are supported and checked against the RFC 9420 test vectors
// (testdata/, run by vectors_test.go).
//
// Internals (tree math, the secret tree, the key schedule, transcript hashes, per-suite primitives)
// are unexported; docs/mls.md describes the package layout and its invariants:
//   - the crypto state of an epoch is immutable once derived, except for the secret tree, which
//     ratchets forward and deletes every key it hands out;
//   - one live state: a Group whose successor was adopted (a processed or confirmed commit,
//     WithConfig) refuses to send, receive and be stored (ErrSuperseded, ErrRemoved), and a
//     PendingCommit's state waits for Confirm (ErrNotConfirmed);
//   - time and randomness come from each state's Env, never from package state (clock.go).
package mls
