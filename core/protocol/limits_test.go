package protocol_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
)

// limitedPair starts a (configured by configure, its metrics in the returned registry) and b,
// partners of each other.
func limitedPair(t *testing.T, h protocol.Handler, configure func(*protocol.ServerConfig)) (*protocoltest.Provider, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	_, b := protocoltest.NewPair(t, domainA, domainB, h, &handler{}, protocoltest.Options{Configure: func(c *protocol.ServerConfig) {
		if c.Domain == domainA {
			c.Registerer = reg
			configure(c)
		}
	}})
	return b, reg
}

func refusals(t *testing.T, reg *prometheus.Registry, endpoint, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "mimi_gateway_protocol_server_refusals_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var ep, re string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "endpoint":
					ep = l.GetValue()
				case "reason":
					re = l.GetValue()
				}
			}
			if ep == endpoint && re == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestKeyMaterialRateLimitServer: claims past a target's bucket get 429 with Retry-After (and
// still take a partner token) while claims for other targets go on; past the partner's bucket
// every claim gets 429; both are counted by reason.
func TestKeyMaterialRateLimitServer(t *testing.T) {
	b, reg := limitedPair(t, &handler{}, func(c *protocol.ServerConfig) {
		c.KeyMaterialPartnerRate = protocol.RateLimit{Interval: time.Hour, Burst: 4}
		c.KeyMaterialTargetRate = protocol.RateLimit{Interval: time.Hour, Burst: 2}
	})
	signer, err := mls.GenerateSigner(1)
	if err != nil {
		t.Fatal(err)
	}
	claim := func(target event.UserURI) error {
		kmr := &protocol.KeyMaterialRequest{Protocol: protocol.ProtocolMLS10, RequestingUser: "mimi://b.example/u/bob", TargetUser: protocol.IdentifierURI(target),
			AcceptableCipherSuites: []mls.CipherSuite{1}, RequesterSignatureKey: signer.Public,
			RequesterCredential: mls.Credential{Type: mls.CredentialTypeBasic, Identity: []byte("mimi://b.example/u/bob")}}
		if err := kmr.Sign(signer.Private); err != nil {
			t.Fatal(err)
		}
		_, err := b.Client.KeyMaterial(t.Context(), domainA, target, kmr)
		return err
	}
	limited := func(err error) bool {
		var he *protocol.HTTPError
		return errors.As(err, &he) && he.Status == http.StatusTooManyRequests && he.RetryAfter > 0
	}
	alice, carla := event.NewUserURI(domainA, "alice"), event.NewUserURI(domainA, "carla")
	for i, tc := range []struct {
		target  event.UserURI
		limited bool
	}{{alice, false}, {alice, false}, {alice, true}, {carla, false}, {carla, true}} {
		if err := claim(tc.target); limited(err) != tc.limited || (!tc.limited && err != nil) {
			t.Fatalf("claim %d for %s: %v, want limited=%v", i, tc.target, err, tc.limited)
		}
	}
	if n := refusals(t, reg, "keyMaterial", "rate_target"); n != 1 {
		t.Errorf("rate_target refusals %v", n)
	}
	if n := refusals(t, reg, "keyMaterial", "rate_partner"); n != 1 {
		t.Errorf("rate_partner refusals %v", n)
	}
}

// blockingHandler holds every /submitMessage until release is closed and reports each arrival.
type blockingHandler struct {
	handler
	arrived chan struct{}
	release chan struct{}
}

func (h *blockingHandler) SubmitMessage(ctx context.Context, peer protocol.Peer, r event.RoomURI, req *protocol.SubmitMessageRequest) (*protocol.SubmitMessageResponse, error) {
	h.arrived <- struct{}{}
	<-h.release
	return h.handler.SubmitMessage(ctx, peer, r, req)
}

// TestBodyBudgetServer: with a budget for two bodies, two requests held by the handler take it,
// a third is answered 503 with Retry-After before its body is read, and once they are done the
// next one is served; per-partner concurrency refuses the same way.
func TestBodyBudgetServer(t *testing.T) {
	for _, tc := range []struct {
		name   string
		reason string
		set    func(*protocol.ServerConfig, int64)
	}{
		{"body budget", "body_budget", func(c *protocol.ServerConfig, size int64) { c.BodyBudget = protocol.BodyCost * (2*size + size/2) }},
		{"partner concurrency", "partner_concurrency", func(c *protocol.ServerConfig, _ int64) { c.PartnerConcurrency = 2 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := appMessage(t, 256<<10)
			size, err := (&protocol.SubmitMessageRequest{Protocol: protocol.ProtocolMLS10, AppMessage: app, SendingURI: "mimi://b.example/u/bob"}).Encode()
			if err != nil {
				t.Fatal(err)
			}
			h := &blockingHandler{arrived: make(chan struct{}, 4), release: make(chan struct{})}
			b, reg := limitedPair(t, h, func(c *protocol.ServerConfig) { tc.set(c, int64(len(size))) })
			submit := func() error {
				_, err := b.Client.SubmitMessage(context.Background(), room, &protocol.SubmitMessageRequest{Protocol: protocol.ProtocolMLS10, AppMessage: app, SendingURI: "mimi://b.example/u/bob"})
				return err
			}
			var wg sync.WaitGroup
			errs := make(chan error, 2)
			for range 2 {
				wg.Add(1)
				go func() { defer wg.Done(); errs <- submit() }()
			}
			<-h.arrived
			<-h.arrived
			err = submit()
			var he *protocol.HTTPError
			if !errors.As(err, &he) || he.Status != http.StatusServiceUnavailable || he.RetryAfter <= 0 {
				t.Fatalf("third request: %v, want 503 with Retry-After", err)
			}
			close(h.release)
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatalf("held request: %v", err)
				}
			}
			if err := submit(); err != nil {
				t.Fatalf("after the others: %v", err)
			}
			if n := refusals(t, reg, "submitMessage", tc.reason); n != 1 {
				t.Errorf("%s refusals %v", tc.reason, n)
			}
		})
	}
}
