package protocol

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// Backlog is the durable outbox's queue for one follower and room: /notify bodies not yet
// accepted by the follower.
type Backlog struct {
	Follower event.Domain  `json:"follower"`
	Room     event.RoomURI `json:"room"`
	// Pending is the number of queued bodies.
	Pending int `json:"pending"`
	// Oldest is when the oldest queued body was enqueued.
	Oldest time.Time `json:"oldest"`
	// Attempts and LastStatus are those of the queue's head (0: no answer yet).
	Attempts   int       `json:"attempts"`
	LastStatus int       `json:"last_status"`
	NextTry    time.Time `json:"next_try"`
}

// ListBacklog returns the outbox's queues, largest first. It reads only the store.
func ListBacklog(ctx context.Context, st *store.Store) ([]Backlog, error) {
	rows, err := st.QueryContext(ctx, `SELECT g.follower, g.room, g.n, g.oldest, h.attempts, h.last_status, h.next_attempt_at
		FROM (SELECT follower, room, COUNT(*) AS n, MIN(created_at) AS oldest, MIN(id) AS head
		      FROM protocol_outbox GROUP BY follower, room) g
		JOIN protocol_outbox h ON h.id = g.head
		ORDER BY g.n DESC, g.follower, g.room`)
	if err != nil {
		return nil, fmt.Errorf("protocol: outbox backlog: %w", err)
	}
	defer rows.Close()
	var out []Backlog
	for rows.Next() {
		var f, r string
		var b Backlog
		var oldest, next int64
		if err := rows.Scan(&f, &r, &b.Pending, &oldest, &b.Attempts, &b.LastStatus, &next); err != nil {
			return nil, fmt.Errorf("protocol: outbox backlog: %w", err)
		}
		b.Follower, b.Room = event.Domain(f), event.RoomURI(r)
		b.Oldest, b.NextTry = time.UnixMilli(oldest).UTC(), time.UnixMilli(next).UTC()
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("protocol: outbox backlog: %w", err)
	}
	return out, nil
}

// backlogCollector exports the outbox's backlog per partner at scrape time: queued bodies and
// the age of the oldest; 0 for a configured partner for whom nothing waits. Followers are
// configured partners, so the label is bounded.
type backlogCollector struct {
	st           *store.Store
	partners     func() []event.Domain
	bodies, age  *prometheus.Desc
	scrapeErrors prometheus.Counter
}

func newBacklogCollector(st *store.Store, partners func() []event.Domain) *backlogCollector {
	l := []string{"partner"}
	return &backlogCollector{st: st, partners: partners,
		bodies: prometheus.NewDesc("mimi_gateway_protocol_outbox_backlog",
			"/notify bodies queued for a partner.", l, nil),
		age: prometheus.NewDesc("mimi_gateway_protocol_outbox_oldest_age_seconds",
			"Age of the oldest /notify body queued for a partner.", l, nil),
		scrapeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mimi_gateway_protocol_outbox_backlog_scrape_errors_total",
			Help: "Scrapes for which the outbox backlog could not be read from the store.",
		}),
	}
}

// Describe implements prometheus.Collector.
func (b *backlogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- b.bodies
	ch <- b.age
	b.scrapeErrors.Describe(ch)
}

// Collect implements prometheus.Collector.
func (b *backlogCollector) Collect(ch chan<- prometheus.Metric) {
	defer b.scrapeErrors.Collect(ch)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rows, err := b.st.QueryContext(ctx, `SELECT follower, COUNT(*), MIN(created_at) FROM protocol_outbox GROUP BY follower`)
	if err != nil {
		b.scrapeErrors.Inc()
		return
	}
	defer rows.Close()
	now := time.Now()
	seen := map[string]bool{}
	for rows.Next() {
		var f string
		var n, oldest int64
		if err := rows.Scan(&f, &n, &oldest); err != nil {
			b.scrapeErrors.Inc()
			return
		}
		seen[f] = true
		ch <- prometheus.MustNewConstMetric(b.bodies, prometheus.GaugeValue, float64(n), f)
		ch <- prometheus.MustNewConstMetric(b.age, prometheus.GaugeValue, now.Sub(time.UnixMilli(oldest)).Seconds(), f)
	}
	if rows.Err() != nil {
		b.scrapeErrors.Inc()
		return
	}
	if b.partners == nil {
		return
	}
	for _, d := range b.partners() {
		if f := string(d); !seen[f] {
			seen[f] = true
			ch <- prometheus.MustNewConstMetric(b.bodies, prometheus.GaugeValue, 0, f)
			ch <- prometheus.MustNewConstMetric(b.age, prometheus.GaugeValue, 0, f)
		}
	}
}
