package matrix

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the adapter's Prometheus collectors. Labels never carry room or user IDs.
type metrics struct {
	inbound       *prometheus.CounterVec // result: published, duplicate, echo, malformed, ignored, no_portal, parked, error, invite_rejected, command, unreadable_notice
	outbound      *prometheus.CounterVec // kind, result: sent, echo, duplicate, malformed, error, no_portal
	transactions  *prometheus.CounterVec // result: ok, duplicate, unauthorized, bad_request, error
	decryptErrors *prometheus.CounterVec // reason: no_session, other
	keyShare      *prometheus.CounterVec // result: ok, error
	keyRequests   prometheus.Counter
	rotations     prometheus.Counter
	pending       prometheus.Gauge
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
		decryptErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mimi", Subsystem: "matrix", Name: "decryption_failures_total",
			Help: "Encrypted Matrix events that could not be decrypted when they arrived, by reason.",
		}, []string{"reason"}),
		keyShare: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mimi", Subsystem: "matrix", Name: "key_sharing_total",
			Help: "Megolm encryptions including group-session sharing for outgoing events, by result.",
		}, []string{"result"}),
		keyRequests: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "mimi", Subsystem: "matrix", Name: "room_key_requests_total",
			Help: "Room key requests sent for encrypted events whose keys had not arrived.",
		}),
		rotations: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "mimi", Subsystem: "matrix", Name: "outbound_session_rotations_total",
			Help: "Times the gateway device replaced its outbound Megolm sessions after the homeserver was unreachable.",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "mimi", Subsystem: "matrix", Name: "parked_encrypted_events",
			Help: "Encrypted events waiting in the store for their room keys.",
		}),
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.inbound, m.outbound, m.transactions, m.decryptErrors, m.keyShare, m.keyRequests, m.rotations, m.pending} {
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
