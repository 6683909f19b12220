// Package rolling runs TestScaleOutRollingRestart: a rolling restart of every replica under load (cmd/mimi-gateway/scaleout's harness). Each
// scale-out test is a package of its own, so that go test runs them in parallel and each has
// its own time limit.
package rolling

import (
	"testing"

	"github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway/scaleout"
)

func TestMain(m *testing.M) { scaleout.Main(m) }
