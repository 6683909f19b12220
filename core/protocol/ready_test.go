package protocol_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
)

// TestServerReady: the readiness check of the MIMI listener (/readyz's "mimi") passes while the
// listener accepts connections and fails, naming the listener, before Listen and after Shutdown.
func TestServerReady(t *testing.T) {
	a, _ := protocoltest.NewPair(t, domainA, domainB, &handler{}, &handler{}, protocoltest.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := a.Server.Ready(ctx); err != nil {
		t.Fatalf("Ready while listening: %v", err)
	}
	a.Stop(t)
	waitFor(t, 10*time.Second, "Ready to fail after Shutdown", func() bool { return a.Server.Ready(ctx) != nil })
	if err := a.Server.Ready(ctx); err == nil || !strings.Contains(err.Error(), "MIMI listener") {
		t.Errorf("Ready after Shutdown: %v, want an error naming the MIMI listener", err)
	}

	// A server that never listened is not ready either.
	srv, err := protocol.NewServer(protocol.ServerConfig{Domain: domainA, Certificate: a.Certificate, ClientCAs: a.CA.Pool,
		Partners: a.Partners, Handler: &handler{}, Store: a.Store})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Ready(ctx); err == nil {
		t.Error("Ready before Listen: nil, want an error")
	}

	// A listener on every address is checked on loopback.
	addr, err := srv.Listen("0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	if err := srv.Ready(ctx); err != nil {
		t.Errorf("Ready on %s: %v", addr, err)
	}
}
