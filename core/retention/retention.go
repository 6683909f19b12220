// Package retention removes what the gateway keeps about people once it is older than its
// category's maximum age: ID mappings, dedupe marks, room history, attachments, dead letters,
// audit log entries, consent records. Each category is a registration — a name, a maximum age
// and a function that removes the records from before a given time — made by the component that
// owns the records, so a new kind of record is one Register call.
//
//	sw := retention.New(retention.WithClock(clock))
//	sw.Register(retention.Category{Name: "muc_history", MaxAge: 180 * 24 * time.Hour, Sweep: xmppHistorySweep})
//	go sw.Run(ctx, time.Hour)
//
// A sweep removes a record once its age (now - its time) exceeds MaxAge, and never before.
// Every removal is counted in mimi_gateway_retention_removed_total{category}.
package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// SweepFunc removes the records of one category whose time is before `before` and returns how
// many it removed. It should work in small batches and stop when ctx ends.
type SweepFunc func(ctx context.Context, before time.Time) (int64, error)

// Category is one kind of record with a maximum age.
type Category struct {
	// Name is the category's name in the configuration and the metrics label, e.g.
	// "id_mappings": lowercase letters, digits and '_'.
	Name string
	// MaxAge is how long a record is kept. Zero or negative keeps records for ever (the
	// category is registered but never swept).
	MaxAge time.Duration
	// Sweep removes the records older than MaxAge.
	Sweep SweepFunc
}

var nameRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// Sweeper runs the registered categories' sweeps. It is safe for concurrent use.
type Sweeper struct {
	now func() time.Time
	log *slog.Logger

	mu   sync.Mutex
	cats []Category
	run  sync.Mutex // one sweep at a time

	removed  *prometheus.CounterVec
	failures *prometheus.CounterVec
	lastRun  *prometheus.GaugeVec
}

// Option configures New.
type Option func(*Sweeper)

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(s *Sweeper) { s.now = now } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option {
	return func(s *Sweeper) {
		if l != nil {
			s.log = l
		}
	}
}

// New returns a sweeper without categories.
func New(opts ...Option) *Sweeper {
	s := &Sweeper{
		now: time.Now,
		log: slog.New(slog.DiscardHandler),
		removed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mimi_gateway_retention_removed_total",
			Help: "Records removed because they were older than their category's maximum age (retention section).",
		}, []string{"category"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mimi_gateway_retention_failures_total",
			Help: "Sweeps of a retention category that failed (retried at the next interval).",
		}, []string{"category"}),
		lastRun: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mimi_gateway_retention_last_sweep_timestamp_seconds",
			Help: "When a retention category was last swept without error (Unix time).",
		}, []string{"category"}),
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Register adds a category. Names are unique.
func (s *Sweeper) Register(c Category) error {
	if !nameRe.MatchString(c.Name) {
		return fmt.Errorf("retention: category name %q: use lowercase letters, digits and '_'", c.Name)
	}
	if c.Sweep == nil {
		return fmt.Errorf("retention: category %s has no sweep function", c.Name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.ContainsFunc(s.cats, func(o Category) bool { return o.Name == c.Name }) {
		return fmt.Errorf("retention: category %s registered twice", c.Name)
	}
	s.cats = append(s.cats, c)
	s.removed.WithLabelValues(c.Name)
	s.failures.WithLabelValues(c.Name)
	return nil
}

// Categories returns the registered categories' names, in registration order.
func (s *Sweeper) Categories() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, len(s.cats))
	for i, c := range s.cats {
		out[i] = c.Name
	}
	return out
}

// SweepOnce sweeps every category once and returns how many records each removed. A failing
// category does not stop the others; the errors are joined.
func (s *Sweeper) SweepOnce(ctx context.Context) (map[string]int64, error) {
	s.run.Lock()
	defer s.run.Unlock()
	s.mu.Lock()
	cats := slices.Clone(s.cats)
	s.mu.Unlock()
	now := s.now()
	out := make(map[string]int64, len(cats))
	var errs []error
	for _, c := range cats {
		if c.MaxAge <= 0 {
			continue
		}
		if err := ctx.Err(); err != nil {
			return out, err
		}
		n, err := c.Sweep(ctx, now.Add(-c.MaxAge))
		out[c.Name] = n
		if n > 0 {
			s.removed.WithLabelValues(c.Name).Add(float64(n))
			s.log.Info("retention: removed old records", "category", c.Name, "removed", n, "max_age", c.MaxAge)
		}
		if err != nil {
			s.failures.WithLabelValues(c.Name).Inc()
			errs = append(errs, fmt.Errorf("retention %s: %w", c.Name, err))
			continue
		}
		s.lastRun.WithLabelValues(c.Name).Set(float64(now.Unix()))
	}
	return out, errors.Join(errs...)
}

// Run sweeps at once and then every interval until ctx ends. Errors are logged; the next sweep
// tries again.
func (s *Sweeper) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = time.Hour
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := s.SweepOnce(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("retention sweep failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Collectors returns the sweeper's metrics, for the admin registry.
func (s *Sweeper) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.removed, s.failures, s.lastRun}
}
