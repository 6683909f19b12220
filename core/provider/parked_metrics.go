package provider

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// parkedCollector exports, at scrape time, what waits for each partner in rooms the partner
// hosts (park.go): parked envelopes and the age of the oldest; 0 for a configured partner for
// whom nothing waits. It is the follower side of the outbox backlog (rooms we host). Partner
// domains are configured, so the label is bounded.
type parkedCollector struct {
	st           *store.Store
	partners     atomic.Pointer[func() []event.Domain]
	count, age   *prometheus.Desc
	scrapeErrors prometheus.Counter
}

var _ prometheus.Collector = (*parkedCollector)(nil)

func newParkedCollector(st *store.Store) *parkedCollector {
	l := []string{"partner"}
	return &parkedCollector{st: st,
		count: prometheus.NewDesc("mimi_gateway_provider_parked",
			"Envelopes parked for a partner that did not answer (rooms the partner hosts, invites of its users), waiting to go out in order.", l, nil),
		age: prometheus.NewDesc("mimi_gateway_provider_parked_oldest_age_seconds",
			"Age of the oldest envelope parked for a partner.", l, nil),
		scrapeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mimi_gateway_provider_parked_scrape_errors_total",
			Help: "Scrapes for which the parked envelopes could not be read from the store.",
		}),
	}
}

// setPartners names the configured partners (once the client is known).
func (c *parkedCollector) setPartners(f func() []event.Domain) { c.partners.Store(&f) }

// Describe implements prometheus.Collector.
func (c *parkedCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.count
	ch <- c.age
	c.scrapeErrors.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *parkedCollector) Collect(ch chan<- prometheus.Metric) {
	defer c.scrapeErrors.Collect(ch)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stats, err := dbOf(c.st).parkedStats(ctx)
	if err != nil {
		c.scrapeErrors.Inc()
		return
	}
	now := time.Now()
	seen := map[string]bool{}
	for _, s := range stats {
		seen[s.partner] = true
		ch <- prometheus.MustNewConstMetric(c.count, prometheus.GaugeValue, float64(s.count), s.partner)
		ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, now.Sub(s.oldest).Seconds(), s.partner)
	}
	if f := c.partners.Load(); f != nil {
		for _, d := range (*f)() {
			if !seen[string(d)] {
				seen[string(d)] = true
				ch <- prometheus.MustNewConstMetric(c.count, prometheus.GaugeValue, 0, string(d))
				ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, 0, string(d))
			}
		}
	}
}
