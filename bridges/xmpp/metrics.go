package xmpp

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the adapter's Prometheus metrics. Labels never carry room or user IDs.
type metrics struct {
	connected  *prometheus.GaugeVec
	reconnects *prometheus.CounterVec
	sent       *prometheus.CounterVec
	received   *prometheus.CounterVec
	published  *prometheus.CounterVec
	outbound   *prometheus.CounterVec
	dropped    *prometheus.CounterVec
	panics     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connected: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "mimi", Subsystem: "xmpp", Name: "component_connected",
			Help: "1 while the component connection is up."}, []string{"component"}),
		reconnects: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "mimi", Subsystem: "xmpp", Name: "component_reconnects_total",
			Help: "Component connections that ended and were redialled."}, []string{"component"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "mimi", Subsystem: "xmpp", Name: "stanzas_sent_total",
			Help: "Stanzas written to the XMPP server."}, []string{"component"}),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "mimi", Subsystem: "xmpp", Name: "stanzas_received_total",
			Help: "Stanzas read from the XMPP server, by kind."}, []string{"kind"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "mimi", Subsystem: "xmpp", Name: "events_published_total",
			Help: "Envelopes published to the bus, by kind."}, []string{"kind"}),
		outbound: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "mimi", Subsystem: "xmpp", Name: "outbound_envelopes_total",
			Help: "MIMI envelopes rendered on XMPP, by kind and result."}, []string{"kind", "result"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "mimi", Subsystem: "xmpp", Name: "stanzas_dropped_total",
			Help: "Incoming stanzas not bridged, by reason."}, []string{"reason"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "mimi", Subsystem: "xmpp", Name: "handler_panics_total",
			Help: "Panics recovered while handling a stanza (a bug; the stanza was dropped)."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.connected, m.reconnects, m.sent, m.received, m.published, m.outbound, m.dropped, m.panics} {
			_ = reg.Register(c)
		}
	}
	return m
}
