package ops_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/mimi-gateway/mimi-gateway/core/ops"
)

func TestProbe(t *testing.T) {
	a, addr := startAdmin(t)
	ctx := t.Context()

	err := ops.Probe(ctx, addr)
	if err == nil || !strings.Contains(err.Error(), "HTTP 503") || !strings.Contains(err.Error(), "lifecycle starting") {
		t.Fatalf("Probe before MarkStarted = %v, want 503 naming lifecycle", err)
	}
	a.MarkStarted()
	if err := ops.Probe(ctx, addr); err != nil {
		t.Fatalf("Probe when ready = %v", err)
	}
	if err := a.AddReadiness("bus", func(context.Context) error { return errors.New("no stream") }); err != nil {
		t.Fatal(err)
	}
	err = ops.Probe(ctx, addr)
	if err == nil || !strings.Contains(err.Error(), "[-]bus failed: no stream") {
		t.Fatalf("Probe with failing bus = %v", err)
	}

	// The listen address form ":port" is probed on loopback.
	_, port, _ := net.SplitHostPort(addr)
	a.RemoveReadiness("bus")
	if err := ops.Probe(ctx, ":"+port); err != nil {
		t.Fatalf("Probe(:%s) = %v", port, err)
	}
	if err := ops.Probe(ctx, "0.0.0.0:"+port); err != nil {
		t.Fatalf("Probe(0.0.0.0:%s) = %v", port, err)
	}
}

func TestProbeUnreachable(t *testing.T) {
	// Reserve a port, then close it, so nothing listens there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if err := ops.Probe(t.Context(), addr); err == nil {
		t.Fatal("Probe of a closed port succeeded")
	}
}

func TestProbeBadAddress(t *testing.T) {
	for _, addr := range []string{"nonsense", "127.0.0.1:", "127.0.0.1:0", "[::1"} {
		if err := ops.Probe(t.Context(), addr); err == nil {
			t.Errorf("Probe(%q) succeeded", addr)
		}
	}
}
