package servertest

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

// Scale returns a polling deadline d scaled by the factor for this machine: $MIMI_TEST_PATIENCE
// when set (a number of at least 1), else CIPatience under CI, else 1.
func Scale(d time.Duration) time.Duration {
	patienceOnce.Do(func() { patienceFactor = patience(os.Getenv) })
	return time.Duration(float64(d) * patienceFactor)
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
