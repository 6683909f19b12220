package protocol_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/protocol/protocoltest"
)

func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// TestDiscoveryCaching: the directory is fetched once and reused until the server's
// Cache-Control max-age (1h) passes, even though the client's default TTL is shorter.
func TestDiscoveryCaching(t *testing.T) {
	n := protocoltest.NewNetwork()
	ca := protocoltest.NewCA(t)
	a := protocoltest.NewProvider(t, n, ca, domainA, &handler{}, protocoltest.Options{})
	a.Partners.Set([]protocol.Partner{{Domain: domainB}})
	clk := &clock{t: time.Now()}
	reg := prometheus.NewRegistry()
	c, err := protocol.NewClient(protocol.ClientConfig{
		Domain: domainB, Certificate: ca.Issue(t, string(domainB)),
		Partners:    protocol.NewPartners(a.PartnerEntry(true)),
		DialContext: n.DialContext, Now: clk.Now, DiscoveryTTL: 5 * time.Minute, Registerer: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	const fetches = "mimi_gateway_protocol_discovery_fetches_total"
	steps := []struct {
		advance time.Duration
		want    float64
	}{
		{0, 1},
		{0, 1},
		{30 * time.Minute, 1}, // past the client's 5 min default: max-age wins
		{29 * time.Minute, 1},
		{2 * time.Minute, 2}, // 61 min: expired
		{time.Minute, 2},
	}
	for i, s := range steps {
		clk.Advance(s.advance)
		if _, err := c.Directory(t.Context(), domainA); err != nil {
			t.Fatal(err)
		}
		if got := counter(t, reg, fetches); got != s.want {
			t.Fatalf("step %d: %v fetches, want %v", i, got, s.want)
		}
	}
	// Requests use the discovered templates.
	if err := c.Notify(t.Context(), domainA, roomB, notifyBody(t, 1)); err != nil {
		t.Fatal(err)
	}
	if got := counter(t, reg, fetches); got != 2 {
		t.Fatalf("notify fetched the directory again (%v fetches)", got)
	}

	// A static base URL needs no fetch.
	c2, err := protocol.NewClient(protocol.ClientConfig{
		Domain: domainB, Certificate: ca.Issue(t, string(domainB)),
		Partners: protocol.NewPartners(a.PartnerEntry(false)), DialContext: n.DialContext, Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	d, err := c2.Directory(t.Context(), domainA)
	if err != nil || d[protocol.EndpointNotify] != "https://a.example/v1/notify/{roomId}" {
		t.Fatalf("static directory %v, %v", d, err)
	}
}
