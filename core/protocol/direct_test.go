package protocol_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
)

// directHandler is handler with the consent, identifier query and abuse capabilities; it
// records what it is given.
type directHandler struct {
	handler
	mu       sync.Mutex
	consents []*protocol.ConsentEntry
	queries  []*protocol.IdentifierRequest
	reports  []*protocol.AbuseReport
	// refuse makes ReportAbuse answer 403.
	refuse bool
}

var (
	_ protocol.ConsentHandler         = (*directHandler)(nil)
	_ protocol.IdentifierQueryHandler = (*directHandler)(nil)
	_ protocol.AbuseHandler           = (*directHandler)(nil)
)

func (h *directHandler) RequestConsent(_ context.Context, _ protocol.Peer, e *protocol.ConsentEntry) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.consents = append(h.consents, e)
	return nil
}

func (h *directHandler) UpdateConsent(ctx context.Context, p protocol.Peer, e *protocol.ConsentEntry) error {
	return h.RequestConsent(ctx, p, e)
}

func (h *directHandler) IdentifierQuery(_ context.Context, _ protocol.Peer, req *protocol.IdentifierRequest) (*protocol.IdentifierResponse, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.queries = append(h.queries, req)
	return &protocol.IdentifierResponse{Code: protocol.IdentifierSuccess, URIs: []protocol.IdentifierURI{"mimi://a.example/u/alice"}}, nil
}

func (h *directHandler) ReportAbuse(_ context.Context, _ protocol.Peer, _ event.RoomURI, r *protocol.AbuseReport, _ []byte) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.refuse {
		return &protocol.StatusError{Status: http.StatusForbidden, Detail: "a frank does not verify"}
	}
	h.reports = append(h.reports, r)
	return nil
}

// TestDirectEndpoints: b's client reaches a's requestConsent, updateConsent, identifierQuery
// and reportAbuse; entries naming users of the wrong providers, operations sent to the wrong
// endpoint and reports about rooms a does not host are refused before the handler.
func TestDirectEndpoints(t *testing.T) {
	ha := &directHandler{}
	a, b := protocoltest.NewPair(t, domainA, domainB, ha, &handler{}, protocoltest.Options{})
	ctx := t.Context()
	alice, bob := protocol.IdentifierURI("mimi://a.example/u/alice"), protocol.IdentifierURI("mimi://b.example/u/bob")
	var he *protocol.HTTPError
	if err := b.Client.RequestConsent(ctx, &protocol.ConsentEntry{Operation: protocol.ConsentRequest, Requester: bob, Target: alice}); err != nil {
		t.Fatal(err)
	}
	if err := b.Client.UpdateConsent(ctx, &protocol.ConsentEntry{Operation: protocol.ConsentGrant, Requester: alice, Target: bob}); err != nil {
		t.Fatal(err)
	}
	for name, e := range map[string]*protocol.ConsentEntry{
		"grant sent as a request":      {Operation: protocol.ConsentGrant, Requester: bob, Target: alice},
		"requester of another domain":  {Operation: protocol.ConsentRequest, Requester: "mimi://c.example/u/carl", Target: alice},
		"requester that is not a user": {Operation: protocol.ConsentRequest, Requester: "mimi://b.example/r/lounge", Target: alice},
	} {
		if err := b.Client.RequestConsent(ctx, e); !errors.As(err, &he) || he.Status != http.StatusBadRequest {
			t.Errorf("%s: %v, want HTTP 400", name, err)
		}
	}
	resp, err := b.Client.IdentifierQuery(ctx, domainA, &protocol.IdentifierRequest{Elements: []protocol.QueryElement{{Type: protocol.SearchEmail, Value: "alice@a.example"}}})
	if err != nil || resp.Code != protocol.IdentifierSuccess || len(resp.URIs) != 1 || resp.URIs[0] != alice {
		t.Fatalf("IdentifierQuery = %+v, %v", resp, err)
	}
	report := &protocol.AbuseReport{Reporter: bob, Accused: "mimi://e.example/u/eve", Messages: []protocol.AbusiveMessage{{Content: []byte("c"), AcceptedTimestamp: 1}}}
	if err := b.Client.ReportAbuse(ctx, room, report); err != nil {
		t.Fatal(err)
	}
	toB := *report
	toB.Reporter = alice
	if err := a.Client.ReportAbuse(ctx, roomB, &toB); !errors.As(err, &he) || he.Status != http.StatusNotFound {
		t.Errorf("report to b, whose handler takes none: %v, want 404", err)
	}
	forged := *report
	forged.Reporter = alice
	if err := b.Client.ReportAbuse(ctx, room, &forged); !errors.As(err, &he) || he.Status != http.StatusBadRequest {
		t.Errorf("report in the name of a's user: %v, want 400", err)
	}
	ha.mu.Lock()
	ha.refuse = true
	ha.mu.Unlock()
	if err := b.Client.ReportAbuse(ctx, room, report); !errors.As(err, &he) || he.Status != http.StatusForbidden {
		t.Errorf("refused report: %v, want 403", err)
	}
	ha.mu.Lock()
	defer ha.mu.Unlock()
	if len(ha.consents) != 2 || ha.consents[0].Operation != protocol.ConsentRequest || ha.consents[1].Operation != protocol.ConsentGrant {
		t.Errorf("consents %+v", ha.consents)
	}
	if len(ha.queries) != 1 || len(ha.reports) != 1 || ha.reports[0].Reporter != bob {
		t.Errorf("queries %+v, reports %+v", ha.queries, ha.reports)
	}
}

// TestIdentifierQueryRateLimit: a partner's identifier queries beyond its bucket are answered
// 429 with Retry-After, other partners' are not affected.
func TestIdentifierQueryRateLimit(t *testing.T) {
	n := protocoltest.NewNetwork()
	ca := protocoltest.NewCA(t)
	ha := &directHandler{}
	a := protocoltest.NewProvider(t, n, ca, domainA, ha, protocoltest.Options{Configure: func(c *protocol.ServerConfig) {
		c.IdentifierQueryRate = protocol.RateLimit{Interval: time.Hour, Burst: 3}
	}})
	b := protocoltest.NewProvider(t, n, ca, domainB, &handler{}, protocoltest.Options{})
	c := protocoltest.NewProvider(t, n, ca, "c.example", &handler{}, protocoltest.Options{})
	a.Partners.Set([]protocol.Partner{b.PartnerEntry(false), c.PartnerEntry(false)})
	b.Partners.Set([]protocol.Partner{a.PartnerEntry(false)})
	c.Partners.Set([]protocol.Partner{a.PartnerEntry(false)})
	ctx := t.Context()
	q := &protocol.IdentifierRequest{Elements: []protocol.QueryElement{{Type: protocol.SearchHandle, Value: "im:alice@a.example"}}}
	for i := range 3 {
		if _, err := b.Client.IdentifierQuery(ctx, domainA, q); err != nil {
			t.Fatalf("query %d: %v", i+1, err)
		}
	}
	var he *protocol.HTTPError
	if _, err := b.Client.IdentifierQuery(ctx, domainA, q); !errors.As(err, &he) || he.Status != http.StatusTooManyRequests || he.RetryAfter <= 0 {
		t.Fatalf("fourth query: %v, want 429 with Retry-After", err)
	}
	if _, err := c.Client.IdentifierQuery(ctx, domainA, q); err != nil {
		t.Fatalf("another partner's query: %v", err)
	}
}
