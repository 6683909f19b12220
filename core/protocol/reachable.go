package protocol

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// A partner that did not answer (a transport error or a 5xx) is down until any exchange with it
// succeeds again: a request of ours that gets an answer, or an authenticated request of the
// partner (the server reports it with PartnerAnswered). Whoever waits for the partner learns it
// at once: OnAnswerAgain listeners (the outbox's wake-up) and PartnerBack channels (a delivery
// that waits), so that delivery resumes within moments of the partner's return.

// OnAnswerAgain registers f to be called, on its own goroutine, whenever a partner answers again
// after it was down. The returned function removes f.
func (c *Client) OnAnswerAgain(f func(event.Domain)) (remove func()) {
	c.reach.mu.Lock()
	defer c.reach.mu.Unlock()
	if c.reach.listeners == nil {
		c.reach.listeners = make(map[int]func(event.Domain))
	}
	c.reach.nextListener++
	id := c.reach.nextListener
	c.reach.listeners[id] = f
	return func() {
		c.reach.mu.Lock()
		defer c.reach.mu.Unlock()
		delete(c.reach.listeners, id)
	}
}

// PartnerAnswered records that partner d answered: an authenticated request from d reached our
// server (ServerConfig.PeerSeen).
func (c *Client) PartnerAnswered(d event.Domain) { c.noteResult(d, nil) }

// PartnerBack returns a channel that is closed when partner d answers again, or an already closed
// channel if d is not known to be down.
func (c *Client) PartnerBack(d event.Domain) <-chan struct{} {
	d = normDomain(string(d))
	c.reach.mu.Lock()
	defer c.reach.mu.Unlock()
	if r := c.reach.m[d]; r == nil || r.DownSince.IsZero() {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	if c.reach.back == nil {
		c.reach.back = make(map[event.Domain]chan struct{})
	}
	ch, ok := c.reach.back[d]
	if !ok {
		ch = make(chan struct{})
		c.reach.back[d] = ch
	}
	return ch
}

// Down lists the partners that have not answered since their first failure, with its time.
func (c *Client) Down() []PartnerReachability {
	c.reach.mu.Lock()
	defer c.reach.mu.Unlock()
	var out []PartnerReachability
	for _, r := range c.reach.m {
		if !r.DownSince.IsZero() {
			out = append(out, *r)
		}
	}
	return out
}

// answeredAgain wakes whoever waits for d (reach.mu held).
func (c *Client) answeredAgain(d event.Domain) {
	if ch, ok := c.reach.back[d]; ok {
		close(ch)
		delete(c.reach.back, d)
	}
	for _, f := range c.reach.listeners {
		go f(d)
	}
}

// noteCertificate records when the server certificate partner d presented expires.
func (c *Client) noteCertificate(d event.Domain, notAfter time.Time) {
	d = normDomain(string(d))
	c.reach.mu.Lock()
	defer c.reach.mu.Unlock()
	if r := c.reach.m[d]; r != nil {
		r.CertNotAfter = notAfter.UTC()
	}
}

// partnerCollector exports, per configured partner, whether it answers, when it last did and
// when the certificate it presented expires, and when our own certificate expires. Partner
// domains are configured, so the label is bounded.
type partnerCollector struct {
	c                                   *Client
	up, lastAnswer, certExpiry, ownCert *prometheus.Desc
}

func newPartnerCollector(c *Client) *partnerCollector {
	l := []string{"partner"}
	return &partnerCollector{c: c,
		up: prometheus.NewDesc("mimi_gateway_partner_up",
			"Whether the partner answered our last exchange with it (1) or has not answered since a failure (0); absent until the first exchange.", l, nil),
		lastAnswer: prometheus.NewDesc("mimi_gateway_partner_last_answer_timestamp_seconds",
			"When the partner last answered a request of ours or sent us an authenticated request.", l, nil),
		certExpiry: prometheus.NewDesc("mimi_gateway_partner_certificate_expiry_timestamp_seconds",
			"When the server certificate the partner last presented expires.", l, nil),
		ownCert: prometheus.NewDesc("mimi_gateway_certificate_expiry_timestamp_seconds",
			"When our own certificate (mimi.cert_file, server and client side of mutual TLS) expires.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (pc *partnerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pc.up
	ch <- pc.lastAnswer
	ch <- pc.certExpiry
	ch <- pc.ownCert
}

// Collect implements prometheus.Collector.
func (pc *partnerCollector) Collect(ch chan<- prometheus.Metric) {
	if leaf := pc.c.cfg.Certificate.Leaf; leaf != nil {
		ch <- prometheus.MustNewConstMetric(pc.ownCert, prometheus.GaugeValue, float64(leaf.NotAfter.Unix()))
	}
	for _, d := range pc.c.cfg.Partners.Domains() {
		r := pc.c.Reachability(d)
		if r.LastSuccess.IsZero() && r.DownSince.IsZero() {
			continue // never talked to
		}
		up := 0.0
		if r.DownSince.IsZero() {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(pc.up, prometheus.GaugeValue, up, string(d))
		if !r.LastSuccess.IsZero() {
			ch <- prometheus.MustNewConstMetric(pc.lastAnswer, prometheus.GaugeValue, float64(r.LastSuccess.Unix()), string(d))
		}
		if !r.CertNotAfter.IsZero() {
			ch <- prometheus.MustNewConstMetric(pc.certExpiry, prometheus.GaugeValue, float64(r.CertNotAfter.Unix()), string(d))
		}
	}
}
