package mls

import (
	"crypto/rand"
	"fmt"
	"io"
	"time"
)

// Time and randomness used by the package. Production code never changes them; tests replace them
// (and use testing/cryptotest.SetGlobalRandom, which also makes the standard library's implicit
// randomness in crypto/hpke and crypto/ecdsa deterministic). They are package variables rather than
// options because they are test seams only; tests that change them must not run in parallel.
var (
	// randReader is the source of all random bytes the package draws itself (fresh secrets, reuse
	// guards, the circl-based X448/Ed448 operations). crypto/rand.Reader honours SetGlobalRandom.
	randReader io.Reader = rand.Reader
	// nowFunc returns the current time, used for lifetime checks.
	nowFunc = time.Now
)

// now returns the package clock's current time.
func now() time.Time { return nowFunc() }

// randomBytes returns n fresh random bytes from the package's randomness source.
func randomBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(randReader, b); err != nil {
		return nil, fmt.Errorf("mls: reading %d random bytes: %w", n, err)
	}
	return b, nil
}
