package matrix

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/e2ee"
)

// metrics are the adapter's Prometheus collectors. Labels never carry room or user IDs.
type metrics struct {
	inbound       *prometheus.CounterVec // result: published, duplicate, echo, malformed, ignored, no_portal, parked, error, invite_rejected, command, unreadable_notice, failed
	outbound      *prometheus.CounterVec // kind, result: sent, echo, duplicate, malformed, error, no_portal
	transactions  *prometheus.CounterVec // result: ok, duplicate, unauthorized, bad_request, error
	*e2ee.Metrics                        // encryption and parked events
}

func newMetrics() *metrics {
	return &metrics{
		inbound: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mimi", Subsystem: "matrix", Name: "inbound_events_total",
			Help: "Matrix events handled by the adapter, by result.",
		}, []string{"result"}),
		outbound: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mimi", Subsystem: "matrix", Name: "outbound_envelopes_total",
			Help: "MIMI envelopes rendered on Matrix, by kind and result.",
		}, []string{"kind", "result"}),
		transactions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mimi", Subsystem: "matrix", Name: "appservice_transactions_total",
			Help: "Appservice transactions received from the homeserver, by result.",
		}, []string{"result"}),
		Metrics: e2ee.NewMetrics(),
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range append([]prometheus.Collector{m.inbound, m.outbound, m.transactions}, m.Collectors()...) {
		if err := r.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				continue
			}
			return fmt.Errorf("matrix: register metrics: %w", err)
		}
	}
	return nil
}
