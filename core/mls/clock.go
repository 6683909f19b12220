package mls

import (
	"crypto/rand"
	"fmt"
	"io"
	"time"
)

// Env is the time and randomness a group, a KeyPackage or a join uses. The zero value is the real
// ones (crypto/rand, time.Now); production code leaves it so. Tests set it per value instead of
// changing package state, so they can run in parallel. Rand feeds every random value the package
// draws for a state: HPKE key pairs (derived from random bytes, RFC 9180 §7.1.3), leaf and init
// secrets, PSK nonces. Reuse guards, signature keys (GenerateSigner) and the standard library's
// own randomness (HPKE encapsulation, ECDSA) come from crypto/rand;
// testing/cryptotest.SetGlobalRandom reaches all of them.
// A state keeps the Env it was made with and hands it to its successors; a loaded state uses
// the zero Env.
type Env struct {
	// Rand is the source of random bytes; nil is crypto/rand.Reader.
	Rand io.Reader
	// Now is the clock for KeyPackage lifetimes; nil is time.Now.
	Now func() time.Time
}

// now returns the Env's current time.
func (e Env) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// randomBytes returns n fresh random bytes from r (crypto/rand when nil).
func randomBytes(r io.Reader, n int) ([]byte, error) {
	if r == nil {
		r = rand.Reader
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("mls: reading %d random bytes: %w", n, err)
	}
	return b, nil
}
