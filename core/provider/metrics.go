package provider

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the provider's Prometheus collectors. Labels come from fixed sets (outcomes,
// notice codes, reasons); never room or user IDs.
type metrics struct {
	// usersOnDemand counts partners' claims for local users without a client, by outcome
	// (created, unknown, lookup_failed).
	usersOnDemand *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{
		usersOnDemand: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mimi_gateway_provider_users_on_demand_total",
			Help: "KeyPackage claims for local users without an MLS client, by outcome (created, unknown, lookup_failed).",
		}, []string{"outcome"}),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.usersOnDemand}
}

// register registers m with r (nothing when r is nil).
func (m *metrics) register(r prometheus.Registerer) error {
	if r == nil {
		return nil
	}
	for _, c := range m.collectors() {
		if err := r.Register(c); err != nil {
			return fmt.Errorf("provider: metrics: %w", err)
		}
	}
	return nil
}
