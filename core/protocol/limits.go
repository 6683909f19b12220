package protocol

import (
	"log/slog"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mimi-gateway/mimi-gateway/core/event"
)

// Resource limits of the server (docs/security.md, "Limits"). Every request of a partner passes,
// after authentication and before its body is read:
//
//   - for /keyMaterial, a token bucket per partner and one per partner and target user (429
//     with Retry-After when empty): one partner's claims for a user do not use up another's,
//     so a partner cannot make a user unreachable for the others by claiming her KeyPackages;
//     for /identifierQuery and /requestConsent, one per partner;
//   - a bound on the requests one partner has in flight (503 with Retry-After beyond it);
//   - a global budget of memory for bodies in flight over all partners: a request reserves
//     BodyCost times its Content-Length (or its endpoint's body limit when the length is not
//     declared), at most a partner's share, until its handler returns (503 with Retry-After
//     when the budget cannot cover it). One partner may hold at most its share, the budget
//     less PartnerReserve of it, so that a partner holding large or slowly sent bodies cannot
//     keep the others out.
//
// Every refusal is counted by endpoint and reason; a partner that keeps tripping limits is
// logged at WARN with its domain, at most once per tripWindow.

// RateLimit is a token bucket: one token every Interval, at most Burst stored. A zero Interval
// means no limit.
type RateLimit struct {
	Interval time.Duration
	Burst    int
}

// Default resource limits, used for zero fields of ServerConfig.
var (
	// DefaultKeyMaterialPartnerRate: 100 claims at once, then two a second, per partner.
	DefaultKeyMaterialPartnerRate = RateLimit{Interval: 500 * time.Millisecond, Burst: 100}
	// DefaultKeyMaterialTargetRate: 10 claims at once, then one a minute, per partner and
	// target user.
	DefaultKeyMaterialTargetRate = RateLimit{Interval: time.Minute, Burst: 10}
	// DefaultIdentifierQueryRate: 20 identifier queries at once, then one every 3 s, per
	// partner (a person searching, not a crawler).
	DefaultIdentifierQueryRate = RateLimit{Interval: 3 * time.Second, Burst: 20}
	// DefaultConsentRequestRate: 20 requests for consent at once, then one every 10 s, per
	// partner.
	DefaultConsentRequestRate = RateLimit{Interval: 10 * time.Second, Burst: 20}
)

const (
	// BodyCost is what a body costs in memory while it is handled, in multiples of its size:
	// the body, its decoding, the message encoded again for the store and the database
	// driver's copy of it (measured with TestBodyBudgetBinary).
	BodyCost = 4
	// DefaultBodyBudget bounds the memory for request bodies in flight over all partners.
	DefaultBodyBudget int64 = 64 << 20
	// DefaultPartnerConcurrency bounds one partner's requests in flight.
	DefaultPartnerConcurrency = 16
	// PartnerReserve is the part of the body budget (1/PartnerReserve) that one partner cannot
	// take: it stays for the others' requests.
	PartnerReserve = 8
	// maxBuckets bounds the per-target buckets kept (beyond it, claims for new targets wait).
	maxBuckets = 100_000
	// tripWindow is the window in which refusals of one partner are counted for the WARN line,
	// and tripWarnAt the count that triggers it.
	tripWindow = time.Minute
	tripWarnAt = 20
)

type bucket struct {
	tokens float64
	last   time.Time
}

// bucketSet is a token bucket per key, bounded in number: full buckets carry no state and are
// dropped when the set grows past its bound.
type bucketSet struct {
	mu   sync.Mutex
	rate RateLimit
	max  int
	m    map[string]*bucket
}

func newBucketSet(r RateLimit, max int) *bucketSet {
	return &bucketSet{rate: r, max: max, m: map[string]*bucket{}}
}

// take takes a token for key at now; when there is none it returns how long until there is.
func (s *bucketSet) take(key string, now time.Time) (bool, time.Duration) {
	if s == nil || s.rate.Interval <= 0 {
		return true, 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.m[key]
	if b == nil {
		if len(s.m) >= s.max {
			s.sweep(now)
		}
		if len(s.m) >= s.max {
			return false, s.rate.Interval
		}
		b = &bucket{tokens: float64(s.rate.Burst), last: now}
		s.m[key] = b
	}
	s.refill(b, now)
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) * float64(s.rate.Interval))
	return false, wait
}

func (s *bucketSet) refill(b *bucket, now time.Time) {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = math.Min(float64(s.rate.Burst), b.tokens+float64(d)/float64(s.rate.Interval))
		b.last = now
	}
}

// sweep drops the buckets that have refilled completely (mu held).
func (s *bucketSet) sweep(now time.Time) {
	for k, b := range s.m {
		s.refill(b, now)
		if b.tokens >= float64(s.rate.Burst) {
			delete(s.m, k)
		}
	}
}

// RateLimiter is a token bucket per key, bounded in number of keys like the server's own, for
// a limit a handler applies itself (the hub's relay of KeyPackage claims per follower).
type RateLimiter struct{ s *bucketSet }

// NewRateLimiter returns a limiter of r per key; a zero Interval means no limit.
func NewRateLimiter(r RateLimit) *RateLimiter { return &RateLimiter{s: newBucketSet(r, maxBuckets)} }

// Take takes a token for key at now; when there is none it returns how long until there is.
func (l *RateLimiter) Take(key string, now time.Time) (bool, time.Duration) {
	return l.s.take(key, now)
}

// budget is a counting semaphore of bytes that never blocks, with a bound per partner.
type budget struct {
	mu        sync.Mutex
	max, used int64
	held      map[event.Domain]int64
}

// share is what one partner may hold: the budget less its reserve for the others.
func (b *budget) share() int64 { return b.max - b.max/PartnerReserve }

func (b *budget) acquire(d event.Domain, n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.used+n > b.max || b.held[d]+n > b.share() {
		return false
	}
	b.used += n
	b.held[d] += n
	return true
}

func (b *budget) release(d event.Domain, n int64) {
	b.mu.Lock()
	b.used -= n
	if b.held[d] -= n; b.held[d] <= 0 {
		delete(b.held, d)
	}
	b.mu.Unlock()
}

// inFlight counts each partner's requests in flight.
type inFlight struct {
	mu  sync.Mutex
	max int
	n   map[event.Domain]int
}

func (f *inFlight) acquire(d event.Domain) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n[d] >= f.max {
		return false
	}
	f.n[d]++
	return true
}

func (f *inFlight) release(d event.Domain) {
	f.mu.Lock()
	if f.n[d]--; f.n[d] <= 0 {
		delete(f.n, d)
	}
	f.mu.Unlock()
}

// trips counts each partner's refusals in the current window and says when to warn.
type trips struct {
	mu     sync.Mutex
	start  time.Time
	n      map[event.Domain]int
	warned map[event.Domain]bool
}

// add counts one refusal of d at now and reports whether this one crosses tripWarnAt in the
// window (then the count is returned for the log line).
func (t *trips) add(d event.Domain, now time.Time) (int, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n == nil || now.Sub(t.start) >= tripWindow {
		t.start, t.n, t.warned = now, map[event.Domain]int{}, map[event.Domain]bool{}
	}
	t.n[d]++
	if t.n[d] >= tripWarnAt && !t.warned[d] {
		t.warned[d] = true
		return t.n[d], true
	}
	return t.n[d], false
}

// limits holds the server's resource limits and their state.
type limits struct {
	partnerRate, targetRate *bucketSet
	queryRate, consentRate  *bucketSet
	bodies                  budget
	flight                  inFlight
	trips                   trips
	refusals                *prometheus.CounterVec
	log                     *slog.Logger
	now                     func() time.Time
}

func newLimits(cfg *ServerConfig, log *slog.Logger) *limits {
	pick := func(r, d RateLimit) RateLimit {
		if r.Interval == 0 && r.Burst == 0 {
			return d
		}
		return r
	}
	l := &limits{
		partnerRate: newBucketSet(pick(cfg.KeyMaterialPartnerRate, DefaultKeyMaterialPartnerRate), maxBuckets),
		targetRate:  newBucketSet(pick(cfg.KeyMaterialTargetRate, DefaultKeyMaterialTargetRate), maxBuckets),
		queryRate:   newBucketSet(pick(cfg.IdentifierQueryRate, DefaultIdentifierQueryRate), maxBuckets),
		consentRate: newBucketSet(pick(cfg.ConsentRequestRate, DefaultConsentRequestRate), maxBuckets),
		bodies:      budget{max: cfg.BodyBudget, held: map[event.Domain]int64{}},
		flight:      inFlight{max: cfg.PartnerConcurrency, n: map[event.Domain]int{}},
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mimi_gateway_protocol_server_refusals_total",
			Help: "MIMI server-to-server requests refused before their handler, by endpoint and reason.",
		}, []string{"endpoint", "reason"}),
		log: log,
		now: time.Now,
	}
	if l.bodies.max <= 0 {
		l.bodies.max = DefaultBodyBudget
	}
	if l.flight.max <= 0 {
		l.flight.max = DefaultPartnerConcurrency
	}
	return l
}

// refuse counts a refusal; for a known partner it also feeds the WARN line.
func (l *limits) refuse(ep Endpoint, peer event.Domain, reason string) {
	label := string(ep)
	if label == "" {
		label = "other"
	}
	l.refusals.WithLabelValues(label, reason).Inc()
	if peer == "" {
		return
	}
	if n, warn := l.trips.add(peer, l.now()); warn {
		l.log.Warn("a partner keeps tripping the server's limits", "peer", peer, "refusals", n, "window", tripWindow, "last_reason", reason, "endpoint", label)
	}
}

// admit applies the limits to a request of peer for ep (target: the path's ID) whose body will
// hold at most size bytes. It returns a release function, or the refusal: status, Retry-After,
// detail and the reason to count.
func (l *limits) admit(ep Endpoint, peer event.Domain, target IdentifierURI, size int64) (release func(), status int, retry time.Duration, detail, reason string) {
	if ep == EndpointKeyMaterial {
		now := l.now()
		if ok, wait := l.partnerRate.take(string(peer), now); !ok {
			return nil, http.StatusTooManyRequests, wait, "too many key material claims from " + string(peer), "rate_partner"
		}
		if ok, wait := l.targetRate.take(string(peer)+" "+string(target), now); !ok {
			return nil, http.StatusTooManyRequests, wait, "too many key material claims for this user", "rate_target"
		}
	}
	switch ep {
	case EndpointIdentifierQuery:
		if ok, wait := l.queryRate.take(string(peer), l.now()); !ok {
			return nil, http.StatusTooManyRequests, wait, "too many identifier queries from " + string(peer), "rate_query"
		}
	case EndpointRequestConsent:
		if ok, wait := l.consentRate.take(string(peer), l.now()); !ok {
			return nil, http.StatusTooManyRequests, wait, "too many requests for consent from " + string(peer), "rate_consent"
		}
	}
	if !l.flight.acquire(peer) {
		return nil, http.StatusServiceUnavailable, time.Second, "too many requests in flight from " + string(peer), "partner_concurrency"
	}
	cost := min(BodyCost*size, l.bodies.share()) // a lone request always fits
	if !l.bodies.acquire(peer, cost) {
		l.flight.release(peer)
		return nil, http.StatusServiceUnavailable, time.Second, "the server is busy; retry later", "body_budget"
	}
	return func() {
		l.bodies.release(peer, cost)
		l.flight.release(peer)
	}, 0, 0, "", ""
}
