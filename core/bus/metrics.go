package bus

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the bus's Prometheus collectors. Labels are bounded: direction ("out", "in"),
// network (a configured adapter network, or "unknown" for undecodable messages), and for dead
// letters a reason from a fixed set. Never room or user IDs.
type metrics struct {
	published    *prometheus.CounterVec   // direction, network
	duplicates   *prometheus.CounterVec   // direction, network
	publishErrs  *prometheus.CounterVec   // direction, network
	delivered    *prometheus.CounterVec   // direction, network
	acked        *prometheus.CounterVec   // direction, network
	naked        *prometheus.CounterVec   // direction, network
	deadLettered *prometheus.CounterVec   // direction, network, reason
	handlerDur   *prometheus.HistogramVec // direction, network, outcome
	replayed     prometheus.Counter       // dead letters published again by an operator
	discarded    prometheus.Counter       // dead letters removed by an operator
}

func newMetrics() *metrics {
	const ns, sub = "mimi", "bus"
	dn := []string{"direction", "network"}
	counter := func(name, help string, labels []string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help}, labels)
	}
	return &metrics{
		published:    counter("published_total", "Envelopes stored by JetStream (duplicates excluded).", dn),
		duplicates:   counter("publish_duplicates_total", "Publishes JetStream reported as duplicates of a stored envelope (same ID within the dedupe window).", dn),
		publishErrs:  counter("publish_errors_total", "Publishes that failed.", dn),
		delivered:    counter("delivered_total", "Messages delivered to a consumer (redeliveries included).", dn),
		acked:        counter("acked_total", "Messages acknowledged after a successful handler.", dn),
		naked:        counter("naked_total", "Messages negatively acknowledged for redelivery after a handler error.", dn),
		deadLettered: counter("dead_lettered_total", "Messages moved to the dead-letter stream, by reason.", append(dn, "reason")),
		handlerDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "handler_duration_seconds",
			Help:    "Time from delivery to the handler's result, by outcome (ack, nak, dead_letter, stopped).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10), // 0.5ms .. ~131s
		}, append(dn, "outcome")),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "dead_letters_replayed_total",
			Help: "Dead letters an operator published again on their original subject."}),
		discarded: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "dead_letters_discarded_total",
			Help: "Dead letters an operator removed without publishing them."}),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.published, m.duplicates, m.publishErrs, m.delivered, m.acked, m.naked, m.deadLettered, m.handlerDur, m.replayed, m.discarded}
}
