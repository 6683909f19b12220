// Package lease elects one replica of a gateway to do the work that must happen once per
// provider (the MIMI endpoint with its hub sequencing, outbox and inbox, the adapters' single
// connections, sweeps), with a lease in the shared SQL store (core/store, PostgreSQL when
// several replicas run) and a fencing token.
//
// A lease is a row of ha_leases: holder, advertised address, fencing token and expiry, the
// expiry on the database's clock, so replicas' clocks do not matter. Campaign waits until the
// row is free or expired and takes it, moving the token up by one; the holder renews it every
// TTL/3. The holder counts the lease as its own only until its local deadline (the start of its
// last successful renewal plus the TTL, on the monotonic clock), which is never later than the
// expiry in the database: once another replica can take over, the old holder has already
// stopped. Every write transaction of the holder ends with Fence (store.SetFence), which checks
// under a shared row lock that the token is still current and unexpired; a takeover has to wait
// for those transactions, and after it every write of the old holder fails with
// store.ErrFenced. So a holder that was paused (SIGSTOP, a long GC or VM stall) past the lease
// time writes nothing when it resumes.
package lease

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mimi-gateway/mimi-gateway/core/store"
)

//go:embed migrations
var migrationFS embed.FS

// Schema is this package's store component ("lease").
var Schema = store.MustMigrationsFromFS("lease", migrationFS, "migrations")

// Defaults of Config.
const (
	DefaultTTL           = 15 * time.Second
	DefaultRetryInterval = time.Second
)

// Config configures a Lease.
type Config struct {
	// Store holds the lease (migrated by New).
	Store *store.Store
	// Name names the lease, e.g. "provider" (1-64 characters).
	Name string
	// Holder identifies this process among the replicas [hostname-pid-random].
	Holder string
	// Address is where this replica can be reached while it holds the lease (other replicas
	// forward to it); optional.
	Address string
	// TTL is how long the lease lasts without renewal [DefaultTTL]. A standby takes over at most
	// this long after the holder stopped renewing.
	TTL time.Duration
	// RenewInterval is how often the holder renews [TTL/3].
	RenewInterval time.Duration
	// RetryInterval is how often a standby looks whether the lease is free [DefaultRetryInterval].
	RetryInterval time.Duration
	Logger        *slog.Logger
	// Registerer receives the lease's metrics (nil: none).
	Registerer prometheus.Registerer
}

// Info is a lease as stored.
type Info struct {
	Name, Holder, Address string
	// Token is the fencing token: it grows by one with every new holder.
	Token int64
	// ExpiresAt is the expiry on the database's clock.
	ExpiresAt time.Time
}

// Lease is one named lease, held or wanted by this process.
type Lease struct {
	cfg Config
	st  *store.Store
	log *slog.Logger
	met *metrics

	mu       sync.Mutex
	token    int64     // 0 while not held
	deadline time.Time // local deadline (monotonic)
	lost     chan struct{}
	lostOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

// ErrLost is the cause given to a holder whose lease ended without Release.
var ErrLost = errors.New("lease: lost")

// New checks cfg and migrates the store.
func New(ctx context.Context, cfg Config) (*Lease, error) {
	if cfg.Store == nil || cfg.Name == "" || len(cfg.Name) > 64 {
		return nil, errors.New("lease: a store and a name of 1-64 characters are required")
	}
	if cfg.Holder == "" {
		cfg.Holder = DefaultHolder()
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.RenewInterval <= 0 || cfg.RenewInterval >= cfg.TTL {
		cfg.RenewInterval = cfg.TTL / 3
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = DefaultRetryInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Store.Migrate(ctx, Schema); err != nil {
		return nil, fmt.Errorf("lease: migrate: %w", err)
	}
	met := newMetrics(cfg.Name)
	if cfg.Registerer != nil {
		if err := met.register(cfg.Registerer); err != nil {
			return nil, err
		}
	}
	return &Lease{cfg: cfg, st: cfg.Store, met: met, lost: make(chan struct{}),
		log: cfg.Logger.With("component", "lease", "lease", cfg.Name, "holder", cfg.Holder)}, nil
}

// DefaultHolder is a replica identity: host name, process ID and a random part (a restarted
// process with the same PID on the same host is another holder).
func DefaultHolder() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// Holder is this process's identity.
func (l *Lease) Holder() string { return l.cfg.Holder }

// nowExpr is the database's clock in Unix milliseconds.
func nowExpr(d store.Dialect) string {
	if d == store.Postgres {
		return `CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)`
	}
	return `CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)`
}

// tryAcquire takes the lease if it is free or expired and returns the new token (0: another
// replica holds it).
func (l *Lease) tryAcquire(ctx context.Context) (int64, error) {
	now := nowExpr(l.st.Dialect())
	q := `INSERT INTO ha_leases (name, holder, address, token, expires_at, acquired_at) VALUES (?, ?, ?, 1, ` + now + ` + ?, ` + now + `)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, address = excluded.address, token = ha_leases.token + 1,
			expires_at = excluded.expires_at, acquired_at = excluded.acquired_at
		WHERE ha_leases.expires_at < excluded.acquired_at
		RETURNING token`
	var token int64
	// The lease's own statements bypass the store's fence (DB, not InTx).
	err := l.st.DB().QueryRowContext(ctx, l.st.Rebind(q), l.cfg.Name, l.cfg.Holder, l.cfg.Address, l.cfg.TTL.Milliseconds()).Scan(&token)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("lease %s: acquire: %w", l.cfg.Name, err)
	}
	return token, nil
}

// Campaign waits until this process holds the lease (or ctx ends), then renews it in the
// background until Release or until it is lost (Lost is closed then). It returns the fencing
// token. Call it once.
func (l *Lease) Campaign(ctx context.Context) (int64, error) {
	logged := false
	for {
		start := time.Now()
		token, err := l.tryAcquire(ctx)
		if err != nil {
			l.log.Warn("lease: acquire failed; trying again", "err", err)
		} else if token != 0 {
			l.mu.Lock()
			l.token, l.deadline = token, start.Add(l.cfg.TTL)
			l.stop, l.done = make(chan struct{}), make(chan struct{})
			l.mu.Unlock()
			l.met.held.Set(1)
			l.met.token.Set(float64(token))
			l.met.changes.WithLabelValues("acquired").Inc()
			l.log.Info("lease acquired: this replica is the leader", "term", token, "ttl", l.cfg.TTL.String())
			go l.renew()
			return token, nil
		} else if !logged {
			if in, err := Current(ctx, l.st, l.cfg.Name); err == nil {
				l.log.Info("lease held by another replica: standing by", "leader", in.Holder, "term", in.Token)
			}
			logged = true
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("lease %s: campaign: %w", l.cfg.Name, ctx.Err())
		case <-time.After(l.cfg.RetryInterval):
		}
	}
}

// renew keeps the lease until stop is closed or it is lost.
func (l *Lease) renew() {
	defer close(l.done)
	next := time.Now().Add(l.cfg.RenewInterval)
	for {
		l.mu.Lock()
		deadline := l.deadline
		l.mu.Unlock()
		wait := time.Until(next)
		if d := time.Until(deadline); d < wait {
			wait = d
		}
		select {
		case <-l.stop:
			return
		case <-time.After(max(wait, 0)):
		}
		if !time.Now().Before(deadline) {
			l.markLost("the lease time passed without a successful renewal")
			return
		}
		if time.Now().Before(next) {
			continue
		}
		start := time.Now()
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		ok, err := l.renewOnce(ctx)
		cancel()
		switch {
		case err != nil:
			l.log.Warn("lease: renewal failed; trying again until the lease time ends", "err", err, "left", time.Until(deadline).Round(time.Millisecond).String())
			next = time.Now().Add(min(l.cfg.RenewInterval, 500*time.Millisecond))
		case !ok:
			l.markLost("another replica holds the lease, or it expired in the store")
			return
		default:
			l.mu.Lock()
			l.deadline = start.Add(l.cfg.TTL)
			l.mu.Unlock()
			next = start.Add(l.cfg.RenewInterval)
		}
	}
}

func (l *Lease) renewOnce(ctx context.Context) (bool, error) {
	l.mu.Lock()
	token := l.token
	l.mu.Unlock()
	now := nowExpr(l.st.Dialect())
	res, err := l.st.DB().ExecContext(ctx, l.st.Rebind(`UPDATE ha_leases SET expires_at = `+now+` + ?
		WHERE name = ? AND holder = ? AND token = ? AND expires_at >= `+now),
		l.cfg.TTL.Milliseconds(), l.cfg.Name, l.cfg.Holder, token)
	if err != nil {
		return false, fmt.Errorf("lease %s: renew: %w", l.cfg.Name, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("lease %s: renew: %w", l.cfg.Name, err)
	}
	return n == 1, nil
}

func (l *Lease) markLost(why string) {
	l.lostOnce.Do(func() {
		l.mu.Lock()
		token := l.token
		l.token = 0
		l.mu.Unlock()
		l.met.held.Set(0)
		l.met.changes.WithLabelValues("lost").Inc()
		l.log.Error("lease lost: this replica is no longer the leader and writes nothing more under it", "term", token, "why", why)
		close(l.lost)
	})
}

// Lost is closed when the lease held by this process ends without Release.
func (l *Lease) Lost() <-chan struct{} { return l.lost }

// Token returns the fencing token while the lease is held (before its local deadline), else 0.
func (l *Lease) Token() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.token == 0 || !time.Now().Before(l.deadline) {
		return 0
	}
	return l.token
}

// Fence is a store.Fence: it refuses the transaction (store.ErrFenced) unless this process
// holds the lease, both locally and in the store, where it takes a shared lock on the lease's
// row until the transaction ends (a takeover waits for it).
func (l *Lease) Fence(ctx context.Context, tx *store.Tx) error {
	token := l.Token()
	if token == 0 {
		l.met.refused.Inc()
		l.mu.Lock()
		held := l.token != 0
		l.mu.Unlock()
		if held {
			l.markLost("the lease time passed without a successful renewal")
		}
		return fmt.Errorf("lease %s: %w", l.cfg.Name, store.ErrFenced)
	}
	q := `SELECT token FROM ha_leases WHERE name = ? AND holder = ? AND token = ? AND expires_at > ` + nowExpr(tx.Dialect())
	if tx.Dialect() == store.Postgres {
		q += ` FOR SHARE`
	}
	var got int64
	err := tx.QueryRowContext(ctx, q, l.cfg.Name, l.cfg.Holder, token).Scan(&got)
	if errors.Is(err, sql.ErrNoRows) {
		l.met.refused.Inc()
		l.markLost("a write found the lease taken over or expired in the store")
		return fmt.Errorf("lease %s: token %d is no longer current: %w", l.cfg.Name, token, store.ErrFenced)
	}
	if err != nil {
		return fmt.Errorf("lease %s: fence: %w", l.cfg.Name, err)
	}
	return nil
}

// Release stops renewing and, if this process still holds the lease, ends it in the store at
// once so that a standby takes over without waiting for the TTL. Call it after the last write.
func (l *Lease) Release(ctx context.Context) error {
	l.mu.Lock()
	stop, done, token := l.stop, l.done, l.token
	l.token = 0
	l.mu.Unlock()
	if stop == nil {
		return nil
	}
	select {
	case <-stop:
	default:
		close(stop)
	}
	<-done
	l.met.held.Set(0)
	if token == 0 {
		return nil
	}
	_, err := l.st.DB().ExecContext(ctx, l.st.Rebind(`UPDATE ha_leases SET expires_at = 0 WHERE name = ? AND holder = ? AND token = ?`),
		l.cfg.Name, l.cfg.Holder, token)
	if err != nil {
		return fmt.Errorf("lease %s: release: %w", l.cfg.Name, err)
	}
	l.met.changes.WithLabelValues("released").Inc()
	l.log.Info("lease released", "term", token)
	return nil
}

// Current reads the lease called name (store.ErrNotFound if it was never taken).
func Current(ctx context.Context, q store.Querier, name string) (Info, error) {
	var (
		in  Info
		exp int64
	)
	err := q.QueryRowContext(ctx, `SELECT name, holder, address, token, expires_at FROM ha_leases WHERE name = ?`, name).
		Scan(&in.Name, &in.Holder, &in.Address, &in.Token, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return Info{}, fmt.Errorf("lease %s: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return Info{}, fmt.Errorf("lease %s: read: %w", name, err)
	}
	in.ExpiresAt = time.UnixMilli(exp)
	return in, nil
}

type metrics struct {
	held    prometheus.Gauge
	token   prometheus.Gauge
	changes *prometheus.CounterVec
	refused prometheus.Counter
}

func newMetrics(name string) *metrics {
	cl := prometheus.Labels{"lease": name}
	return &metrics{
		held: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mimi_lease_held", ConstLabels: cl,
			Help: "1 while this replica holds the lease (is the leader for its work), else 0."}),
		token: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mimi_lease_token", ConstLabels: cl,
			Help: "Fencing token of the lease when this replica last acquired it."}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mimi_lease_changes_total", ConstLabels: cl,
			Help: "Changes of this replica's hold on the lease: acquired, lost, released."}, []string{"event"}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "mimi_lease_fenced_writes_total", ConstLabels: cl,
			Help: "Write transactions refused because this replica no longer held the lease."}),
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.held, m.token, m.changes, m.refused} {
		if err := r.Register(c); err != nil {
			return fmt.Errorf("lease: metrics: %w", err)
		}
	}
	return nil
}
