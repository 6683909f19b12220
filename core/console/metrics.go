package console

import (
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the console's own. Labels are bounded sets: no account names, rooms or users.
type metrics struct {
	requests *prometheus.CounterVec // code class
	logins   *prometheus.CounterVec // method, outcome
	sessions *prometheus.CounterVec // method
	refused  *prometheus.CounterVec // reason: session, csrf, role
	actions  *prometheus.CounterVec // action
}

func newMetrics() *metrics {
	c := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "mimi", Subsystem: "console", Name: name, Help: help}, labels)
	}
	return &metrics{
		requests: c("requests_total", "Console HTTP requests, by status class (2xx, 3xx, 4xx, 5xx).", "code"),
		logins:   c("logins_total", "Sign-in attempts, by method (local, oidc) and outcome (ok, failed, throttled, no_group).", "method", "outcome"),
		sessions: c("sessions_started_total", "Sessions started, by sign-in method.", "method"),
		refused:  c("refused_total", "Requests refused, by reason (session, csrf, role).", "reason"),
		actions:  c("actions_total", "Operator actions, by kind (dlq_replay, dlq_discard, partner_check, config_check, config_apply, config_rollback).", "action"),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.requests, m.logins, m.sessions, m.refused, m.actions}
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (m *metrics) instrument(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		code := sw.code
		if code == 0 {
			code = http.StatusOK
		}
		m.requests.WithLabelValues(string(rune('0'+code/100)) + "xx").Inc()
	})
}

// rateRow is one counter's rate for the overview.
type rateRow struct {
	Name      string
	PerMinute float64
	Total     float64
}

// rateMetrics are the counters whose rates the overview shows, summed over their labels.
var rateMetrics = []string{
	"mimi_bus_published_total",
	"mimi_bus_acked_total",
	"mimi_bus_naked_total",
	"mimi_bus_dead_lettered_total",
	"mimi_gateway_protocol_client_requests_total",
}

// rateSampler keeps two samples of the counters and derives per-minute rates.
type rateSampler struct {
	g   prometheus.Gatherer
	now func() time.Time

	mu         sync.Mutex
	prev, last map[string]float64
	prevT      time.Time
	lastT      time.Time
}

func newRateSampler(g prometheus.Gatherer, now func() time.Time) *rateSampler {
	return &rateSampler{g: g, now: now}
}

func (s *rateSampler) sample() {
	mfs, err := s.g.Gather()
	if err != nil && len(mfs) == 0 {
		return
	}
	cur := map[string]float64{}
	for _, mf := range mfs {
		name := mf.GetName()
		if !isRateMetric(name) {
			continue
		}
		for _, m := range mf.GetMetric() {
			if c := m.GetCounter(); c != nil {
				cur[name] += c.GetValue()
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.prev, s.prevT = s.last, s.lastT
	s.last, s.lastT = cur, s.now()
}

func isRateMetric(n string) bool {
	for _, x := range rateMetrics {
		if x == n {
			return true
		}
	}
	return false
}

// current returns the rates between the last two samples (none before the second sample).
func (s *rateSampler) current() []rateRow {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.prev == nil {
		return nil
	}
	dt := s.lastT.Sub(s.prevT).Minutes()
	if dt <= 0 {
		return nil
	}
	var out []rateRow
	for name, v := range s.last {
		out = append(out, rateRow{Name: strings.TrimSuffix(name, "_total"), PerMinute: (v - s.prev[name]) / dt, Total: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
