package e2ee

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the Prometheus collectors of encryption and parking (mimi_matrix_…). Labels never
// carry room or user IDs.
type Metrics struct {
	// DecryptErrors counts encrypted events that could not be decrypted when they arrived, by
	// reason: no_session, other.
	DecryptErrors *prometheus.CounterVec
	// KeyShare counts encryptions of outgoing events (with group-session sharing), by result:
	// ok, error.
	KeyShare *prometheus.CounterVec
	// KeyRequests counts room key requests for parked events.
	KeyRequests prometheus.Counter
	// Rotations counts renewals of the outbound Megolm sessions (Parking.Renew).
	Rotations prometheus.Counter
	// Pending is the number of parked events.
	Pending prometheus.Gauge
}

// NewMetrics returns unregistered collectors (Collectors lists them for registration).
func NewMetrics() *Metrics {
	return &Metrics{
		DecryptErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mimi", Subsystem: "matrix", Name: "decryption_failures_total",
			Help: "Encrypted Matrix events that could not be decrypted when they arrived, by reason.",
		}, []string{"reason"}),
		KeyShare: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mimi", Subsystem: "matrix", Name: "key_sharing_total",
			Help: "Megolm encryptions including group-session sharing for outgoing events, by result.",
		}, []string{"result"}),
		KeyRequests: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "mimi", Subsystem: "matrix", Name: "room_key_requests_total",
			Help: "Room key requests sent for encrypted events whose keys had not arrived.",
		}),
		Rotations: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "mimi", Subsystem: "matrix", Name: "outbound_session_rotations_total",
			Help: "Times the gateway device replaced its outbound Megolm sessions after the homeserver was unreachable.",
		}),
		Pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "mimi", Subsystem: "matrix", Name: "parked_encrypted_events",
			Help: "Encrypted events waiting in the store for their room keys.",
		}),
	}
}

// Collectors are the metrics' collectors.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.DecryptErrors, m.KeyShare, m.KeyRequests, m.Rotations, m.Pending}
}
