package provider

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the provider's Prometheus collectors. Labels come from fixed sets (outcomes,
// notice codes, endpoints, reasons); never room, user or partner IDs.
type metrics struct {
	// usersOnDemand counts partners' claims for local users without a client, by outcome
	// (created, unknown, lookup_failed).
	usersOnDemand *prometheus.CounterVec
	// refusals counts what the provider refused a partner (or a partner hub's fanout), by
	// endpoint (keyMaterial, update, submitMessage, notify) and reason.
	refusals *prometheus.CounterVec
	// credentialAlerts counts leaves naming one of our users with a key we did not create, seen
	// in a partner hub's fanout (credentials.go).
	credentialAlerts prometheus.Counter
	// notices counts notices to local users, by code and reason.
	notices *prometheus.CounterVec
	// givenUp counts mimi.out envelopes the provider gave up on (dead-lettered), by kind and
	// reason.
	givenUp *prometheus.CounterVec
	// parked counts envelopes parked for a partner that did not answer (park.go).
	parked prometheus.Counter
	// parkedNow exports what is parked per partner now (set by New: it reads the store).
	parkedNow *parkedCollector
}

func newMetrics() *metrics {
	return &metrics{
		usersOnDemand: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mimi_gateway_provider_users_on_demand_total",
			Help: "KeyPackage claims for local users without an MLS client, by outcome (created, unknown, lookup_failed).",
		}, []string{"outcome"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mimi_gateway_provider_refusals_total",
			Help: "Partner requests and fanout the provider refused, by endpoint and reason.",
		}, []string{"endpoint", "reason"}),
		credentialAlerts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mimi_gateway_provider_credential_alerts_total",
			Help: "Leaves claiming one of our users with a signature key we did not create, refused in a partner hub's fanout.",
		}),
		notices: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mimi_gateway_provider_notices_total",
			Help: "Notices published to local users about failures they caused, by code (invite_failed, refused, undelivered, partner_unreachable, partner_reachable, room_failed) and reason.",
		}, []string{"code", "reason"}),
		givenUp: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mimi_gateway_provider_given_up_total",
			Help: "Envelopes from the adapters the MIMI endpoint gave up on (refused, or failed on their last delivery; they are dead-lettered), by kind and reason.",
		}, []string{"kind", "reason"}),
		parked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mimi_gateway_provider_parked_total",
			Help: "Envelopes from the adapters parked because the partner they need did not answer (delivered when it answers again).",
		}),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	cs := []prometheus.Collector{m.usersOnDemand, m.refusals, m.credentialAlerts, m.notices, m.givenUp, m.parked}
	if m.parkedNow != nil {
		cs = append(cs, m.parkedNow)
	}
	return cs
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

// refused counts a refusal of endpoint for reason.
func (p *Provider) refused(endpoint, reason string) {
	p.met.refusals.WithLabelValues(endpoint, reason).Inc()
}

// refusalReason is the metric reason of a sequencing refusal.
func refusalReason(err error) string {
	var (
		ce *errCredential
		we *errWrongEpoch
		mp *errMissingProposals
	)
	switch {
	case errors.As(err, &ce):
		return "credential_" + ce.Reason
	case errors.As(err, &we):
		return "wrong_epoch"
	case errors.As(err, &mp):
		return "missing_proposals"
	case errors.Is(err, errInvalidProposal), errors.Is(err, errInvalidState):
		return "invalid"
	case errors.Is(err, errNotAllowed):
		return "not_allowed"
	}
	return "other"
}
