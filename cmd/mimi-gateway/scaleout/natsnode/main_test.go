// Package natsnode runs TestScaleOutKillNATSNode: SIGKILL of one NATS node under load (cmd/mimi-gateway/scaleout's harness). Each
// scale-out test is a package of its own, so that go test runs them in parallel and each has
// its own time limit.
package natsnode

import (
	"testing"

	"github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway/scaleout"
)

func TestMain(m *testing.M) { scaleout.Main(m) }
