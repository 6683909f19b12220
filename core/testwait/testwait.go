// Package testwait scales the polling deadlines of tests that talk to real servers (PostgreSQL,
// NATS, Dendrite, Prosody, the gateway binary) for the machine they run on. It has no
// dependencies, so that the core's tests and the adapters' (through bridges/servertest) use the
// same factor.
package testwait

import (
	"os"
	"strconv"
	"sync"
	"time"
)

// Polling deadlines of tests that talk to real servers are what a quiet machine needs, times a
// factor for the machine the tests run on: CI runs every suite at once on 2 cores, where a
// server's answer often takes several times as long (10-second deadlines failed at load 116).
// A longer deadline costs nothing when the test passes; it only waits longer before a failure.
// Timing promises of the product (a message within 10 s of a restart) are asserted with their
// own bounds, never with a scaled deadline.

// CIPatience is the factor under CI ($CI is "true").
const CIPatience = 4

// MaxExtra bounds what scaling adds to a deadline: a suite's deadlines of minutes, scaled in
// full, would outlast go test's timeout for the package, and a failing test would end in that
// timeout's goroutine dump instead of its own message.
const MaxExtra = 2 * time.Minute

// Scale returns a polling deadline d scaled by the factor for this machine: $MIMI_TEST_PATIENCE
// when set (a number of at least 1), else CIPatience under CI, else 1; it adds at most MaxExtra.
func Scale(d time.Duration) time.Duration {
	patienceOnce.Do(func() { patienceFactor = patience(os.Getenv) })
	return scale(d, patienceFactor)
}

// scale is d times f, lengthened by at most MaxExtra.
func scale(d time.Duration, f float64) time.Duration {
	return d + min(time.Duration(float64(d)*(f-1)), MaxExtra)
}

var (
	patienceOnce   sync.Once
	patienceFactor float64
)

// patience reads the factor from the environment getenv gives.
func patience(getenv func(string) string) float64 {
	if v := getenv("MIMI_TEST_PATIENCE"); v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 1 {
			return f
		}
	}
	if ci, err := strconv.ParseBool(getenv("CI")); err == nil && ci {
		return CIPatience
	}
	return 1
}
