package e2e

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	gt "github.com/mimi-gateway/mimi-gateway/cmd/mimi-gateway/internal/gatewaytest"
)

// sample is one series of a /metrics scrape.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

var labelRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)

// parseMetrics reads the Prometheus text format: one sample a line, comments skipped.
func parseMetrics(text string) ([]sample, error) {
	var out []sample
	for n, l := range strings.Split(text, "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i < 0 {
			return nil, fmt.Errorf("metrics line %d: no value: %q", n+1, l)
		}
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d: value: %w", n+1, err)
		}
		s := sample{name: l[:i], labels: map[string]string{}, value: v}
		if j := strings.IndexByte(l[:i], '{'); j >= 0 {
			s.name = l[:j]
			for _, m := range labelRE.FindAllStringSubmatch(l[j:i], -1) {
				s.labels[m[1]] = m[2]
			}
		}
		out = append(out, s)
	}
	return out, nil
}

// scrape returns g's metrics.
func scrape(t *testing.T, g *gt.Gateway) []sample {
	t.Helper()
	ss, err := parseMetrics(g.Metrics(t))
	if err != nil {
		t.Fatalf("%s: %v", g.Domain, err)
	}
	return ss
}

// value is the sum of the samples named name whose labels include want.
func value(ss []sample, name string, want map[string]string) (float64, bool) {
	var sum float64
	found := false
	for _, s := range ss {
		if s.name != name {
			continue
		}
		ok := true
		for k, v := range want {
			if s.labels[k] != v {
				ok = false
			}
		}
		if ok {
			sum += s.value
			found = true
		}
	}
	return sum, found
}

// operate: what an operator sees of a pairing's running gateways. `healthcheck` without --addr
// finds the admin listener of the configuration (not the default port) and /readyz names the MIMI
// listener; both gateways export metrics of the MIMI server and client by endpoint and status
// with latency, the partner's reachability and certificate, their own certificate, the outbox and
// the notices of the conversations so far; no label carries a user or room ID. Then A's partner
// goes down while A's users write into the 1:1 chat that A started (a room A hosts) and into the
// one B started (a room B hosts): A shows the partner down, the first message in its outbox
// backlog for that partner and the second parked for it, each with its age; when the partner is
// back, it is up again, nothing waits, a retry was counted and both messages arrived.
func operate(t *testing.T, p *pairing, c, cb *conv) {
	for _, g := range []*gt.Gateway{p.gwA, p.gwB} {
		if out := g.Command(t, "healthcheck"); !strings.Contains(out, "ready") {
			t.Errorf("%s: healthcheck without --addr (admin address %s in the configuration): %q", g.Domain, g.AdminAddr, out)
		}
		if ok, body := g.Ready(); !ok || !strings.Contains(body, "[+]mimi ok") {
			t.Errorf("%s: /readyz does not report the MIMI listener as ready:\n%s", g.Domain, body)
		}
	}
	now := float64(time.Now().Unix())
	for _, pair := range [][2]*gt.Gateway{{p.gwA, p.gwB}, {p.gwB, p.gwA}} {
		g, partner := pair[0], pair[1]
		ss := scrape(t, g)
		pl := map[string]string{"partner": partner.Domain}
		checks := []struct {
			name   string
			labels map[string]string
			ok     func(float64) bool
			want   string
		}{
			{"mimi_gateway_protocol_server_requests_total", map[string]string{"code": "200"}, positive, "> 0"},
			{"mimi_gateway_protocol_server_request_seconds_count", nil, positive, "> 0"},
			{"mimi_gateway_protocol_client_requests_total", map[string]string{"code": "200"}, positive, "> 0"},
			{"mimi_gateway_protocol_client_request_seconds_count", nil, positive, "> 0"},
			{"mimi_gateway_partner_up", pl, func(v float64) bool { return v == 1 }, "1"},
			{"mimi_gateway_partner_last_answer_timestamp_seconds", pl, func(v float64) bool { return v > now-3600 && v <= now+60 }, "within the last hour"},
			{"mimi_gateway_partner_certificate_expiry_timestamp_seconds", pl, func(v float64) bool { return v > now }, "in the future"},
			{"mimi_gateway_certificate_expiry_timestamp_seconds", nil, func(v float64) bool { return v > now }, "in the future"},
			{"mimi_gateway_protocol_outbox_backlog", pl, func(v float64) bool { return v >= 0 }, "present"},
			{"mimi_gateway_protocol_outbox_oldest_age_seconds", pl, func(v float64) bool { return v >= 0 }, "present"},
			{"mimi_gateway_protocol_outbox_sent_total", nil, func(v float64) bool { return v >= 0 }, "present"},
			{"mimi_gateway_provider_parked", pl, func(v float64) bool { return v == 0 }, "0"},
			{"mimi_gateway_provider_parked_oldest_age_seconds", pl, func(v float64) bool { return v == 0 }, "0"},
			{"mimi_gateway_provider_notices_total", nil, positive, "> 0 (the notices about the unknown users)"},
		}
		for _, ck := range checks {
			v, found := value(ss, ck.name, ck.labels)
			if !found || !ck.ok(v) {
				t.Errorf("%s: %s%v = %v (found %v), want %s", g.Domain, ck.name, ck.labels, v, found, ck.want)
			}
		}
		for _, endpoint := range []string{"keyMaterial", "submitMessage", "notify"} {
			_, server := value(ss, "mimi_gateway_protocol_server_requests_total", map[string]string{"endpoint": endpoint})
			_, client := value(ss, "mimi_gateway_protocol_client_requests_total", map[string]string{"endpoint": endpoint})
			if !server && !client {
				t.Errorf("%s: no request series for the endpoint %s, neither as server nor as client", g.Domain, endpoint)
			}
		}
		checkLabels(t, g.Domain, ss, p)
		for _, s := range ss {
			if s.name == "mimi_bus_dead_lettered_total" || s.name == "mimi_gateway_provider_given_up_total" || s.name == "mimi_gateway_provider_notices_total" {
				t.Logf("%s: %s%v %v", g.Domain, s.name, s.labels, s.value)
			}
		}
	}

	// The partner goes down while A's users write into a room A hosts and into one B hosts.
	own, partner := p.gwA, p.gwB
	partner.Kill()
	m := c.cs.send(t, "Betriebstest: "+partner.Domain+" ist gerade nicht erreichbar")
	m2 := cb.cp.send(t, "Betriebstest: auch hier wartet eine Nachricht")
	waitPartnerMetrics(t, own, partner.Domain, "down, with a backlog and parked messages", map[string]func(float64) bool{
		"mimi_gateway_partner_up":                         func(v float64) bool { return v == 0 },
		"mimi_gateway_protocol_outbox_backlog":            func(v float64) bool { return v >= 1 },
		"mimi_gateway_protocol_outbox_oldest_age_seconds": positive,
		"mimi_gateway_provider_parked":                    func(v float64) bool { return v >= 1 },
		"mimi_gateway_provider_parked_oldest_age_seconds": positive,
	})
	partner.StartReady(t)
	c.cp.waitText(t, c.starter, m.text)
	cb.cs.waitText(t, cb.peer, m2.text)
	waitPartnerMetrics(t, own, partner.Domain, "up, with nothing waiting and the retries counted", map[string]func(float64) bool{
		"mimi_gateway_partner_up":                    func(v float64) bool { return v == 1 },
		"mimi_gateway_protocol_outbox_backlog":       func(v float64) bool { return v == 0 },
		"mimi_gateway_provider_parked":               func(v float64) bool { return v == 0 },
		"mimi_gateway_protocol_outbox_retries_total": positive,
	})
	checkLabels(t, own.Domain, scrape(t, own), p)
}

func positive(v float64) bool { return v > 0 }

// waitPartnerMetrics polls g's metrics until every named series for the partner satisfies its
// condition, and logs the values it saw.
func waitPartnerMetrics(t *testing.T, g *gt.Gateway, partner, what string, want map[string]func(float64) bool) {
	t.Helper()
	pl := map[string]string{"partner": partner}
	gt.Eventually(t, 2*time.Minute, g.Domain+" showing "+partner+" "+what, func() error {
		ss := scrape(t, g)
		var seen []string
		ok := true
		for name, cond := range want {
			v, found := value(ss, name, pl)
			seen = append(seen, fmt.Sprintf("%s %v", name, v))
			ok = ok && found && cond(v)
		}
		slices.Sort(seen)
		if !ok {
			return fmt.Errorf("%s", strings.Join(seen, ", "))
		}
		t.Logf("%s: %s %s: %s", g.Domain, partner, what, strings.Join(seen, ", "))
		return nil
	})
}

// checkLabels fails the test for a label of the gateway's own metrics that carries a user or room
// ID: a MIMI URI, a Matrix or XMPP address, or the name of one of the pairing's users.
func checkLabels(t *testing.T, domain string, ss []sample, p *pairing) {
	t.Helper()
	forbidden := []string{"mimi://", "@", "!", "/u/", "/r/", "niemand"}
	for _, who := range []person{p.a, p.a2, p.a3, p.b, p.b2, p.b3} {
		forbidden = append(forbidden, who.Name())
	}
	for _, s := range ss {
		if !strings.HasPrefix(s.name, "mimi_") {
			continue
		}
		for k, v := range s.labels {
			if k == "user" || k == "room" {
				t.Errorf("%s: %s has a %s label", domain, s.name, k)
			}
			for _, f := range forbidden {
				if strings.Contains(strings.ToLower(v), f) {
					t.Errorf("%s: %s{%s=%q}: the label carries %q", domain, s.name, k, v, f)
				}
			}
		}
	}
}
