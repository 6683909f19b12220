package protocol

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

//go:embed migrations
var migrationFS embed.FS

// Schema is this package's store component ("protocol"): the notify outbox. Migrate it before
// using an Outbox.
var Schema = store.MustMigrationsFromFS("protocol", migrationFS, "migrations")

// NotifySender delivers one /notify body; *Client implements it.
type NotifySender interface {
	Notify(ctx context.Context, follower event.Domain, room event.RoomURI, body []byte) error
}

var _ NotifySender = (*Client)(nil)

// OutboxConfig configures an Outbox. Zero durations take the defaults in brackets.
type OutboxConfig struct {
	Store  *store.Store
	Sender NotifySender
	// PollInterval is how often due rows are looked for without a Wake [1s].
	PollInterval time.Duration
	// MinBackoff and MaxBackoff bound the exponential backoff after a failure [1s, 10m].
	MinBackoff, MaxBackoff time.Duration
	// MaxRetryAfter caps a partner's Retry-After [1h].
	MaxRetryAfter time.Duration
	// Lease is how long a row being sent stays claimed [2m]. A claim that a killed process left
	// is released when the next outbox on the store starts (Run), not after the lease: only
	// one process runs a store's outbox.
	Lease time.Duration
	// Expire drops rows that could not be delivered for this long [72h]; the follower then
	// recovers through groupInfo and an external join.
	Expire time.Duration
	// Workers bounds concurrent deliveries (at most one per follower and room) [8].
	Workers int
	// MaxBatch bounds how many queued bodies of one (follower, room) go out together, in
	// order, as one /notify body (the concatenation of their FanoutMessages) [64]; 1 sends
	// each body alone. A batch also holds at most MaxFanoutMessages FanoutMessages.
	MaxBatch int
	// MaxBatchBytes bounds a batched /notify body [1 MiB, at most DefaultLimits.Notify]; a
	// single queued body is sent even when larger. A batch the partner refuses with 413 is
	// split in halves.
	MaxBatchBytes int64
	// OnExpire, if set, is told about bodies of a queue dropped after Expire (to tell the room).
	OnExpire func(ctx context.Context, follower event.Domain, room event.RoomURI, bodies int)
	// Partners, if set, lists the configured partners, for whom the backlog gauges are exported
	// even when nothing waits (0), so that an alert sees the series; when nil and Sender is a
	// *Client, its partners.
	Partners   func() []event.Domain
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now replaces time.Now.
	Now func() time.Time
}

// Outbox is the hub's durable queue of /notify bodies: Enqueue inside the transaction that
// accepts a message, Run delivers in order per (follower, room) with retries, consecutive
// bodies of a queue batched into one /notify.
type Outbox struct {
	cfg  OutboxConfig
	log  *slog.Logger
	wake chan struct{}

	// inflight holds the head ids of the batches being delivered by this process, which a
	// WakeFollower must not make due again while their request runs.
	mu       sync.Mutex
	inflight map[int64]bool

	sent, expired prometheus.Counter
	failures      *prometheus.CounterVec
	retries       *prometheus.CounterVec // by partner
	pending       prometheus.Gauge
}

// NewOutbox returns an Outbox; call Run to start delivering.
func NewOutbox(cfg OutboxConfig) (*Outbox, error) {
	if cfg.Store == nil || cfg.Sender == nil {
		return nil, errors.New("protocol: outbox needs a store and a sender")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.PollInterval, time.Second)
	def(&cfg.MinBackoff, time.Second)
	def(&cfg.MaxBackoff, 10*time.Minute)
	def(&cfg.MaxRetryAfter, time.Hour)
	def(&cfg.Lease, 2*time.Minute)
	def(&cfg.Expire, 72*time.Hour)
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 64
	}
	cfg.MaxBatch = min(cfg.MaxBatch, MaxFanoutMessages)
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = 1 << 20
	}
	cfg.MaxBatchBytes = min(cfg.MaxBatchBytes, DefaultLimits.Notify)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if c, ok := cfg.Sender.(*Client); ok && cfg.Partners == nil && c.cfg.Partners != nil {
		cfg.Partners = c.cfg.Partners.Domains
	}
	o := &Outbox{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "protocol.outbox"),
		wake:     make(chan struct{}, 1),
		inflight: make(map[int64]bool),
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mimi_gateway_protocol_outbox_sent_total",
			Help: "Queued /notify bodies delivered from the outbox (several may share one request).",
		}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mimi_gateway_protocol_outbox_expired_total",
			Help: "/notify bodies dropped after the outbox expiry.",
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mimi_gateway_protocol_outbox_failures_total",
			Help: "Failed /notify delivery attempts, by class (http_4xx, http_5xx, transport).",
		}, []string{"class"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mimi_gateway_protocol_outbox_retries_total",
			Help: "Failed /notify deliveries that will be retried, by partner.",
		}, []string{"partner"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "mimi_gateway_protocol_outbox_pending",
			Help: "/notify bodies waiting in the outbox (as of the last scan).",
		}),
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{o.sent, o.expired, o.failures, o.retries, o.pending, newBacklogCollector(cfg.Store, cfg.Partners)} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("protocol: outbox metrics: %w", err)
			}
		}
	}
	return o, nil
}

// Enqueue adds one /notify body made of msgs for follower and room, inside tx (the caller's
// transaction, so that accepting a message and queueing its fanout commit together). Call Wake
// after the transaction commits.
func (o *Outbox) Enqueue(ctx context.Context, tx *store.Tx, follower event.Domain, room event.RoomURI, msgs ...*FanoutMessage) error {
	body, err := EncodeFanoutMessages(msgs)
	if err != nil {
		return err
	}
	return o.EnqueueBody(ctx, tx, follower, room, body)
}

// EnqueueBody is Enqueue with an encoded body.
func (o *Outbox) EnqueueBody(ctx context.Context, tx *store.Tx, follower event.Domain, room event.RoomURI, body []byte) error {
	if follower == "" || room == "" || len(body) == 0 {
		return errors.New("protocol: outbox: empty follower, room or body")
	}
	if int64(len(body)) > DefaultLimits.Notify {
		return fmt.Errorf("protocol: outbox: body of %d bytes exceeds the /notify limit", len(body))
	}
	now := o.cfg.Now().UnixMilli()
	_, err := tx.ExecContext(ctx, `INSERT INTO protocol_outbox (follower, room, body, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?)`,
		string(normDomain(string(follower))), string(room), body, now, now)
	if err != nil {
		return fmt.Errorf("protocol: outbox: enqueue: %w", err)
	}
	return nil
}

// Wake makes Run look for due rows now.
func (o *Outbox) Wake() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// WakeFollower makes the queues to follower due now, cutting short the backoff after failed
// attempts, and wakes Run: call it when the follower answers again (Client.OnAnswerAgain), so
// that delivery resumes at once instead of after the backoff.
func (o *Outbox) WakeFollower(ctx context.Context, follower event.Domain) error {
	now := o.cfg.Now().UnixMilli()
	o.mu.Lock()
	var busy []any
	for id := range o.inflight {
		busy = append(busy, id)
	}
	o.mu.Unlock()
	q := `UPDATE protocol_outbox SET next_attempt_at = ? WHERE follower = ? AND attempts > 0 AND next_attempt_at > ?`
	args := []any{now, string(normDomain(string(follower))), now}
	if len(busy) > 0 {
		q += ` AND id NOT IN (?` + strings.Repeat(", ?", len(busy)-1) + `)`
		args = append(args, busy...)
	}
	res, err := o.cfg.Store.ExecContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("protocol: outbox: wake %s: %w", follower, err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		o.log.Info("partner answers again: retrying its queues now", "follower", follower, "queues", n)
	}
	o.Wake()
	return nil
}

// Pending counts queued bodies.
func (o *Outbox) Pending(ctx context.Context) (int, error) {
	var n int
	if err := o.cfg.Store.QueryRowContext(ctx, `SELECT COUNT(*) FROM protocol_outbox`).Scan(&n); err != nil {
		return 0, fmt.Errorf("protocol: outbox: count: %w", err)
	}
	return n, nil
}

// outboxRow is the head of one (follower, room) queue.
type outboxRow struct {
	id        int64
	follower  event.Domain
	room      event.RoomURI
	attempts  int
	due       int64
	createdAt int64
	// batchLast is the id of the last row of the batch fixed for this head, or 0.
	batchLast int64
}

// outboxBatch is one /notify request: the head and the rows after it, concatenated in id order.
type outboxBatch struct {
	head outboxRow
	ids  []int64
	body []byte
}

func (b *outboxBatch) last() int64 { return b.ids[len(b.ids)-1] }

// Run delivers until ctx ends. The rows of one (follower, room) go out in id order, several
// consecutive ones as one /notify body, one request at a time; queues are served concurrently.
// It first makes the batches that an earlier process was sending when it was killed due at
// once (releaseOrphans). Only one outbox may run on a store at a time.
func (o *Outbox) Run(ctx context.Context) error {
	if err := o.releaseOrphans(ctx); err != nil && ctx.Err() == nil {
		// Not fatal: those batches are retried when their lease runs out.
		o.log.Warn("outbox: could not release the batches of a previous run", "err", err)
	}
	t := time.NewTicker(o.cfg.PollInterval)
	defer t.Stop()
	for {
		n, err := o.runOnce(ctx)
		if err != nil && ctx.Err() == nil {
			o.log.Warn("outbox scan failed", "err", err)
		}
		if ctx.Err() != nil {
			return nil
		}
		if n > 0 {
			continue // more may be due (the next rows of the queues just sent)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-o.wake:
		case <-t.C:
		}
	}
}

// releaseOrphans makes the batches claimed by an earlier process due now. Such a claim can only
// have been left by a process killed (or stopped) while it sent the batch: without this, the
// queue (and every later body of the room to that follower) would wait for the claim's lease,
// two minutes by default, after the gateway is back. The batch stays fixed (batch_last), so a
// request of the killed process that did reach the follower is dropped there as a replay.
func (o *Outbox) releaseOrphans(ctx context.Context) error {
	res, err := o.cfg.Store.ExecContext(ctx, `UPDATE protocol_outbox SET next_attempt_at = ?, claimed_at = 0 WHERE claimed_at <> 0`,
		o.cfg.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("protocol: outbox: release claims: %w", err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		o.log.Info("outbox: batches a previous run was sending are retried now", "queues", n)
	}
	return nil
}

// runOnce claims and sends the due head batch of every queue; it returns how many batches it
// attempted or expired.
func (o *Outbox) runOnce(ctx context.Context) (int, error) {
	now := o.cfg.Now()
	rows, err := o.cfg.Store.QueryContext(ctx, `SELECT id, follower, room, attempts, next_attempt_at, created_at, batch_last FROM protocol_outbox
		WHERE id IN (SELECT MIN(id) FROM protocol_outbox GROUP BY follower, room) AND next_attempt_at <= ?
		ORDER BY next_attempt_at, id LIMIT 256`, now.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("select due rows: %w", err)
	}
	var due []outboxRow
	for rows.Next() {
		var r outboxRow
		var f, room string
		if err := rows.Scan(&r.id, &f, &room, &r.attempts, &r.due, &r.createdAt, &r.batchLast); err != nil {
			rows.Close()
			return 0, fmt.Errorf("scan due row: %w", err)
		}
		r.follower, r.room = event.Domain(f), event.RoomURI(room)
		due = append(due, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("due rows: %w", err)
	}
	attempted := 0
	var batches []*outboxBatch
	for _, r := range due {
		if now.UnixMilli()-r.createdAt > o.cfg.Expire.Milliseconds() {
			// The whole fixed batch goes: it is one body as far as the follower can tell.
			res, err := o.cfg.Store.ExecContext(ctx, `DELETE FROM protocol_outbox WHERE follower = ? AND room = ? AND id >= ? AND id <= ?`,
				string(r.follower), string(r.room), r.id, max(r.id, r.batchLast))
			if err != nil {
				return attempted, fmt.Errorf("expire rows: %w", err)
			}
			n, _ := res.RowsAffected()
			o.expired.Add(float64(n))
			o.log.Warn("dropped undeliverable /notify bodies", "follower", r.follower, "bodies", n, "attempts", r.attempts)
			if o.cfg.OnExpire != nil && n > 0 {
				o.cfg.OnExpire(ctx, r.follower, r.room, int(n))
			}
			attempted++
			continue
		}
		b, err := o.batch(ctx, r)
		if err != nil {
			return attempted, err
		}
		if b == nil {
			continue // another replica delivered it meanwhile
		}
		batches = append(batches, b)
	}
	claimed, err := o.claim(ctx, now, batches)
	if err != nil {
		return attempted, err
	}
	attempted += len(claimed)
	sem := make(chan struct{}, o.cfg.Workers)
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		delivered []*outboxBatch
	)
	for _, b := range claimed {
		sem <- struct{}{}
		wg.Add(1)
		o.mu.Lock()
		o.inflight[b.head.id] = true
		o.mu.Unlock()
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if o.deliver(ctx, b) {
				mu.Lock()
				delivered = append(delivered, b)
				mu.Unlock()
				return // in flight until its rows are deleted below
			}
			o.mu.Lock()
			delete(o.inflight, b.head.id)
			o.mu.Unlock()
		}()
	}
	wg.Wait()
	o.forget(ctx, delivered)
	if n, err := o.Pending(ctx); err == nil {
		o.pending.Set(float64(n))
	}
	return attempted, nil
}

// claim leases the heads of batches (their next attempt moved by Lease, the batch fixed) in
// one transaction, so a scan costs one commit however many queues are due; it returns the
// batches this process claimed (another replica may have claimed or delivered some meanwhile).
func (o *Outbox) claim(ctx context.Context, now time.Time, batches []*outboxBatch) ([]*outboxBatch, error) {
	if len(batches) == 0 {
		return nil, nil
	}
	var claimed []*outboxBatch
	err := o.cfg.Store.InTx(ctx, func(tx *store.Tx) error {
		claimed = claimed[:0]
		for _, b := range batches {
			res, err := tx.ExecContext(ctx, `UPDATE protocol_outbox SET next_attempt_at = ?, batch_last = ?, claimed_at = ? WHERE id = ? AND next_attempt_at = ?`,
				now.Add(o.cfg.Lease).UnixMilli(), b.last(), now.UnixMilli(), b.head.id, b.head.due)
			if err != nil {
				return fmt.Errorf("claim row: %w", err)
			}
			if n, _ := res.RowsAffected(); n == 1 {
				claimed = append(claimed, b)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return claimed, nil
}

// forget deletes the rows of the delivered batches, all in one transaction (deliveries of one
// scan end close together), and takes them out of flight. A delete that fails or is lost in a
// crash only makes the follower see those bodies again, and it drops them as duplicates.
func (o *Outbox) forget(ctx context.Context, delivered []*outboxBatch) {
	if len(delivered) == 0 {
		return
	}
	defer func() {
		o.mu.Lock()
		for _, b := range delivered {
			delete(o.inflight, b.head.id)
		}
		o.mu.Unlock()
	}()
	var ids []any
	for _, b := range delivered {
		for _, id := range b.ids {
			ids = append(ids, id)
		}
	}
	err := o.cfg.Store.InTx(ctx, func(tx *store.Tx) error {
		for chunk := range slices.Chunk(ids, 500) {
			q := `DELETE FROM protocol_outbox WHERE id IN (?` + strings.Repeat(", ?", len(chunk)-1) + `)`
			if _, err := tx.ExecContext(ctx, q, chunk...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		o.log.Error("outbox: delivered but could not delete the rows (they will be redelivered; the follower dedupes)", "err", err)
		return
	}
	o.sent.Add(float64(len(ids)))
}

// batch reads the rows head sends, or nil when head is gone. A batch, once fixed (claimed), is resent unchanged until it
// is delivered or split after a 413: a retry of a batch whose answer was lost is then
// byte-identical, and the follower's per-body deduplication drops it instead of applying its
// first messages twice. A new batch takes the consecutive rows of the queue up to MaxBatch
// rows, MaxBatchBytes and MaxFanoutMessages; a body that does not decode goes alone (the
// follower refuses it without holding back its neighbours).
func (o *Outbox) batch(ctx context.Context, head outboxRow) (*outboxBatch, error) {
	q := `SELECT id, body FROM protocol_outbox WHERE follower = ? AND room = ? AND id >= ? ORDER BY id LIMIT ?`
	args := []any{string(head.follower), string(head.room), head.id, o.cfg.MaxBatch}
	fixed := head.batchLast >= head.id
	if fixed {
		q = `SELECT id, body FROM protocol_outbox WHERE follower = ? AND room = ? AND id >= ? AND id <= ? ORDER BY id`
		args = []any{string(head.follower), string(head.room), head.id, head.batchLast}
	}
	rows, err := o.cfg.Store.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("select batch: %w", err)
	}
	defer rows.Close()
	b := &outboxBatch{head: head}
	msgs := 0
	for rows.Next() {
		var id int64
		var body []byte
		if err := rows.Scan(&id, &body); err != nil {
			return nil, fmt.Errorf("scan batch row: %w", err)
		}
		if !fixed {
			n := 0
			if ms, err := DecodeFanoutMessages(body); err == nil {
				n = len(ms)
			}
			if len(b.ids) > 0 && (n == 0 || msgs == 0 || msgs+n > MaxFanoutMessages ||
				int64(len(b.body)+len(body)) > o.cfg.MaxBatchBytes) {
				break
			}
			msgs += n
		}
		b.ids = append(b.ids, id)
		b.body = append(b.body, body...)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("batch rows: %w", err)
	}
	if len(b.ids) == 0 || b.ids[0] != head.id {
		return nil, nil // the head row is gone
	}
	return b, nil
}

// deliver sends b; it reports whether the follower accepted it (its rows are then for forget),
// and records a failed attempt otherwise.
func (o *Outbox) deliver(ctx context.Context, b *outboxBatch) bool {
	r := b.head
	err := o.cfg.Sender.Notify(ctx, r.follower, r.room, b.body)
	if err == nil {
		return true
	}
	if ctx.Err() != nil {
		return false // shutting down: the next run releases the claim (releaseOrphans) and retries the batch
	}
	attempts := r.attempts + 1
	delay := o.backoff(attempts)
	status := 0
	class := "transport"
	last := b.last()
	var he *HTTPError
	if errors.As(err, &he) {
		status = he.Status
		class = "http_5xx"
		if he.Status < 500 {
			class = "http_4xx"
		}
		if he.RetryAfter > 0 {
			delay = min(he.RetryAfter, o.cfg.MaxRetryAfter)
		}
		if he.Status == http.StatusRequestEntityTooLarge && len(b.ids) > 1 {
			// Refused unread, so nothing of it was accepted: retry its first half now.
			last, delay = b.ids[len(b.ids)/2-1], 0
		}
	}
	o.failures.WithLabelValues(class).Inc()
	o.retries.WithLabelValues(string(r.follower)).Inc()
	o.log.Info("/notify delivery failed; will retry", "follower", r.follower, "bodies", len(b.ids), "attempt", attempts, "retry_in", delay, "err", err)
	next := o.cfg.Now().Add(delay).UnixMilli()
	if _, uerr := o.cfg.Store.ExecContext(ctx, `UPDATE protocol_outbox SET attempts = ?, next_attempt_at = ?, last_status = ?, batch_last = ?, claimed_at = 0 WHERE id = ?`,
		attempts, next, status, last, r.id); uerr != nil {
		o.log.Error("outbox: could not record a failed attempt (the lease will expire and it is retried)", "err", uerr)
	}
	return false
}

// backoff is MinBackoff·2^(attempts-1), capped at MaxBackoff, with ±20 % jitter.
func (o *Outbox) backoff(attempts int) time.Duration {
	d := o.cfg.MinBackoff
	for i := 1; i < attempts && d < o.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, o.cfg.MaxBackoff)
	jitter := time.Duration(float64(d) * (rand.Float64()*0.4 - 0.2))
	return d + jitter
}
