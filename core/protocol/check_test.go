package protocol_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
)

// TestCheck fetches a partner's directory over mutual TLS, with a static base URL and with
// discovery, reports the chain it presented, and records reachability: a stopped partner is an
// error, an unknown domain is refused without a connection.
func TestCheck(t *testing.T) {
	for _, discovery := range []bool{false, true} {
		t.Run(map[bool]string{false: "static", true: "discovery"}[discovery], func(t *testing.T) {
			a, b := protocoltest.NewPair(t, "a.example", "b.example", &handler{}, &handler{}, protocoltest.Options{Discovery: discovery})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			res := a.Client.Check(ctx, b.Domain)
			if !res.OK() || res.Status != 200 {
				t.Fatalf("check: %+v", res)
			}
			if len(res.Chain) == 0 || !slices.Contains(res.Chain[0].DNSNames, "b.example") || res.Chain[0].NotAfter.Before(time.Now()) {
				t.Errorf("chain %+v", res.Chain)
			}
			if !slices.Contains(res.Endpoints, string(protocol.EndpointKeyMaterial)) {
				t.Errorf("endpoints %v", res.Endpoints)
			}
			if r := a.Client.Reachability(b.Domain); !r.Reachable() || r.LastSuccess.IsZero() {
				t.Errorf("reachability after success %+v", r)
			}
			b.Stop(t)
			a.Client.CloseIdleConnections()
			res = a.Client.Check(ctx, b.Domain)
			if res.OK() || res.Status != 0 {
				t.Errorf("check of a stopped partner: %+v", res)
			}
			if r := a.Client.Reachability(b.Domain); r.Reachable() || r.LastErrorText == "" {
				t.Errorf("reachability after failure %+v", r)
			}
			if res := a.Client.Check(ctx, "c.example"); res.OK() {
				t.Errorf("check of an unconfigured domain: %+v", res)
			}
		})
	}
}
