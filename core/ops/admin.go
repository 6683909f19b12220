package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultAdminAddr is the admin listener's default address: loopback only,
// on the port Prometheus lists for its own exporters' range.
const DefaultAdminAddr = "127.0.0.1:9464"

// Admin-server limits and defaults.
const (
	// DefaultCheckTimeout bounds each readiness check (WithCheckTimeout).
	DefaultCheckTimeout = 2 * time.Second
	readHeaderTimeout   = 5 * time.Second
	readTimeout         = 10 * time.Second
	writeTimeout        = 30 * time.Second
	idleTimeout         = 60 * time.Second
	maxHeaderBytes      = 16 << 10
	maxCheckNameLen     = 64
)

// CheckFunc is a readiness check: nil means ready. It must honour ctx (it
// gets DefaultCheckTimeout) and be cheap, because /readyz runs it on every
// request. store.(*Store).Ping has this signature.
type CheckFunc func(ctx context.Context) error

// Lifecycle states reported by /readyz in addition to the checks.
const (
	stateStarting int32 = iota
	stateRunning
	stateStopping
)

// BuildInfo is exported as mimi_gateway_build_info.
type BuildInfo struct {
	// Version is the release version ("dev" when empty).
	Version string
	// Commit is the VCS revision ("unknown" when empty).
	Commit string
}

// AdminOption customises NewAdmin.
type AdminOption func(*Admin)

// WithAdminLogger sets the logger (default: discard).
func WithAdminLogger(l *slog.Logger) AdminOption {
	return func(a *Admin) {
		if l != nil {
			a.log = l
		}
	}
}

// WithCheckTimeout sets the per-check timeout for /readyz.
func WithCheckTimeout(d time.Duration) AdminOption {
	return func(a *Admin) {
		if d > 0 {
			a.checkTimeout = d
		}
	}
}

// WithBuildInfo sets the labels of mimi_gateway_build_info.
func WithBuildInfo(b BuildInfo) AdminOption {
	return func(a *Admin) { a.build = b }
}

// Admin is the admin HTTP listener: /livez, /readyz and /metrics, with a
// dedicated Prometheus registry. Create it first, register readiness checks
// and collectors while starting the components, then call MarkStarted; on
// shutdown call MarkStopping first so /readyz turns 503 before anything
// stops. It is safe for concurrent use.
type Admin struct {
	log          *slog.Logger
	checkTimeout time.Duration
	build        BuildInfo
	reg          *prometheus.Registry
	checkFailed  *prometheus.CounterVec
	state        atomic.Int32

	mu     sync.Mutex
	checks []namedCheck
	extra  []route
	srv    *http.Server
	ln     net.Listener
	done   chan struct{}
}

type route struct {
	pattern string
	h       http.Handler
}

type namedCheck struct {
	name string
	fn   CheckFunc
}

var checkNameRe = regexp.MustCompile(`^[a-z][a-z0-9_.-]*$`)

// NewAdmin creates the admin server (not yet listening) with a registry that
// already holds the Go runtime and process collectors, the build info and
// the admin's own metrics.
func NewAdmin(opts ...AdminOption) *Admin {
	a := &Admin{
		log:          slog.New(slog.DiscardHandler),
		checkTimeout: DefaultCheckTimeout,
		reg:          prometheus.NewRegistry(),
	}
	for _, o := range opts {
		o(a)
	}
	a.log = a.log.With("component", "ops.admin")
	if a.build.Version == "" {
		a.build.Version = "dev"
	}
	if a.build.Commit == "" {
		a.build.Commit = "unknown"
	}
	a.checkFailed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mimi_gateway_readiness_check_failures_total",
		Help: "Readiness check evaluations that failed, by check name.",
	}, []string{"check"})
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "mimi_gateway_build_info",
		Help:        "Build information; the value is always 1.",
		ConstLabels: prometheus.Labels{"version": a.build.Version, "commit": a.build.Commit, "goversion": runtime.Version()},
	})
	buildInfo.Set(1)
	ready := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mimi_gateway_lifecycle_running",
		Help: "1 between MarkStarted and MarkStopping, else 0 (starting or stopping). Check results are in /readyz.",
	}, func() float64 {
		if a.state.Load() == stateRunning {
			return 1
		}
		return 0
	})
	a.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo, ready, a.checkFailed,
	)
	return a
}

// Registry returns the admin registry, for components that want to register
// collectors themselves. Never put room or user IDs into labels.
func (a *Admin) Registry() *prometheus.Registry { return a.reg }

// Register adds collectors to the admin registry.
func (a *Admin) Register(cs ...prometheus.Collector) error {
	var errs []error
	for _, c := range cs {
		if err := a.reg.Register(c); err != nil {
			errs = append(errs, fmt.Errorf("ops: register collector: %w", err))
		}
	}
	return errors.Join(errs...)
}

// MustRegister adds collectors and panics on a duplicate or invalid one (a
// programming error).
func (a *Admin) MustRegister(cs ...prometheus.Collector) { a.reg.MustRegister(cs...) }

// AddReadiness registers a named readiness check (e.g. "store", "bus",
// "matrix"). Names are lowercase [a-z0-9_.-], at most 64 bytes, unique.
func (a *Admin) AddReadiness(name string, fn CheckFunc) error {
	if len(name) > maxCheckNameLen || !checkNameRe.MatchString(name) {
		return fmt.Errorf("ops: invalid readiness check name %q", name)
	}
	if fn == nil {
		return fmt.Errorf("ops: readiness check %q is nil", name)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.checks {
		if c.name == name {
			return fmt.Errorf("ops: readiness check %q registered twice", name)
		}
	}
	a.checks = append(a.checks, namedCheck{name: name, fn: fn})
	a.checkFailed.WithLabelValues(name)
	return nil
}

// RemoveReadiness removes a check, e.g. when an optional component is
// disabled on reload. Removing an unknown name does nothing.
func (a *Admin) RemoveReadiness(name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.checks = slices.DeleteFunc(a.checks, func(c namedCheck) bool { return c.name == name })
}

// MarkStarted declares that every component is wired: from now on /readyz
// reports the checks. Before it, /readyz answers 503 "starting".
func (a *Admin) MarkStarted() { a.state.CompareAndSwap(stateStarting, stateRunning) }

// MarkStopping makes /readyz answer 503 "stopping" for good, so load
// balancers drain the instance before components stop. /livez stays 200.
func (a *Admin) MarkStopping() { a.state.Store(stateStopping) }

// CheckResult is one readiness check's outcome.
type CheckResult struct {
	// Name is the check's registered name.
	Name string `json:"name"`
	// OK is true when the check passed.
	OK bool `json:"ok"`
	// Error is the failure message, empty when OK.
	Error string `json:"error,omitempty"`
	// Duration is how long the check took.
	Duration time.Duration `json:"duration_ns"`
}

// Readiness is the /readyz report.
type Readiness struct {
	// Ready is true when the lifecycle is running and every check passed.
	Ready bool `json:"ready"`
	// State is "starting", "running" or "stopping".
	State string `json:"state"`
	// Checks holds each check's result in registration order.
	Checks []CheckResult `json:"checks"`
}

// Check evaluates readiness now: every check runs concurrently with the
// per-check timeout.
func (a *Admin) Check(ctx context.Context) Readiness {
	a.mu.Lock()
	checks := slices.Clone(a.checks)
	a.mu.Unlock()

	r := Readiness{Checks: make([]CheckResult, len(checks))}
	switch a.state.Load() {
	case stateStarting:
		r.State = "starting"
	case stateRunning:
		r.State = "running"
	default:
		r.State = "stopping"
	}
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() {
			r.Checks[i] = a.runCheck(ctx, c)
		})
	}
	wg.Wait()
	r.Ready = r.State == "running"
	for _, c := range r.Checks {
		if !c.OK {
			r.Ready = false
			a.checkFailed.WithLabelValues(c.Name).Inc()
		}
	}
	return r
}

func (a *Admin) runCheck(ctx context.Context, c namedCheck) (res CheckResult) {
	res.Name = c.name
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, a.checkTimeout)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				errc <- fmt.Errorf("check panicked: %v", p)
			}
		}()
		errc <- c.fn(ctx)
	}()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		// A check that ignores its context must not hang /readyz.
		err = fmt.Errorf("check did not finish within %s: %w", a.checkTimeout, ctx.Err())
	}
	res.Duration = time.Since(start)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	res.OK = true
	return res
}

// Handle mounts an extra endpoint on the admin listener, e.g.
// "POST /admin/reload", with net/http ServeMux pattern syntax. It must be
// called before Start or Serve; the built-in paths cannot be replaced.
// Anything mounted here is reachable by whoever reaches the admin address,
// so keep that address on loopback or a protected network.
func (a *Admin) Handle(pattern string, h http.Handler) error {
	if h == nil {
		return fmt.Errorf("ops: admin handler for %q is nil", pattern)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.srv != nil {
		return fmt.Errorf("ops: admin handler %q added after the server started", pattern)
	}
	// Validate the pattern (and conflicts) now rather than at Start.
	probe := a.baseMux()
	for _, r := range a.extra {
		probe.Handle(r.pattern, r.h)
	}
	if err := safeHandle(probe, pattern, h); err != nil {
		return err
	}
	a.extra = append(a.extra, route{pattern: pattern, h: h})
	return nil
}

// safeHandle registers on mux, turning ServeMux's panics on bad or
// conflicting patterns into errors.
func safeHandle(mux *http.ServeMux, pattern string, h http.Handler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("ops: admin handler %q: %v", pattern, p)
		}
	}()
	mux.Handle(pattern, h)
	return nil
}

// Handler returns the admin HTTP handler (for tests or to mount elsewhere).
func (a *Admin) Handler() http.Handler {
	a.mu.Lock()
	extra := slices.Clone(a.extra)
	a.mu.Unlock()
	mux := a.baseMux()
	for _, r := range extra {
		mux.Handle(r.pattern, r.h)
	}
	return mux
}

func (a *Admin) baseMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", a.serveReadyz)
	mux.Handle("GET /metrics", promhttp.InstrumentMetricHandler(a.reg, promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(a.log.Handler(), slog.LevelError),
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             writeTimeout - time.Second,
	})))
	return mux
}

// serveReadyz answers 200 when ready, else 503. The body is text
// ("[+]name ok" / "[-]name failed: ...") unless the client asks for JSON
// (Accept: application/json or ?format=json).
func (a *Admin) serveReadyz(w http.ResponseWriter, r *http.Request) {
	rep := a.Check(r.Context())
	code := http.StatusOK
	if !rep.Ready {
		code = http.StatusServiceUnavailable
	}
	w.Header().Set("Cache-Control", "no-store")
	if r.URL.Query().Get("format") == "json" || strings.Contains(r.Header.Get("Accept"), "application/json") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(rep)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(rep.Text()))
}

// Text renders the report in the Kubernetes healthz style.
func (r Readiness) Text() string {
	var b strings.Builder
	if r.State != "running" {
		fmt.Fprintf(&b, "[-]lifecycle %s\n", r.State)
	}
	for _, c := range r.Checks {
		if c.OK {
			fmt.Fprintf(&b, "[+]%s ok\n", c.Name)
		} else {
			fmt.Fprintf(&b, "[-]%s failed: %s\n", c.Name, oneLine(c.Error))
		}
	}
	if r.Ready {
		b.WriteString("readyz check passed\n")
	} else {
		b.WriteString("readyz check failed\n")
	}
	return b.String()
}

func oneLine(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}

// Start listens on addr (DefaultAdminAddr when empty) and serves in the
// background. It returns the bound address (useful with port 0).
func (a *Admin) Start(addr string) (net.Addr, error) {
	if addr == "" {
		addr = DefaultAdminAddr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("ops: admin listener on %s: %w", addr, err)
	}
	if err := a.Serve(ln); err != nil {
		_ = ln.Close()
		return nil, err
	}
	return ln.Addr(), nil
}

// Serve serves on ln in the background; Shutdown stops it. It may be called
// once.
func (a *Admin) Serve(ln net.Listener) error {
	handler := a.Handler()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.srv != nil {
		return errors.New("ops: admin server already started")
	}
	a.srv = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	a.ln = ln
	a.done = make(chan struct{})
	srv, done := a.srv, a.done
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("admin server stopped", "err", err)
		}
	}()
	a.log.Info("admin listener started", "addr", ln.Addr().String())
	return nil
}

// Addr returns the listening address, or nil before Start/Serve.
func (a *Admin) Addr() net.Addr {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ln == nil {
		return nil
	}
	return a.ln.Addr()
}

// Shutdown marks the admin as stopping and stops the listener gracefully
// within ctx. Register it as the last shutdown step so /livez and /metrics
// stay available while other components drain.
func (a *Admin) Shutdown(ctx context.Context) error {
	a.MarkStopping()
	a.mu.Lock()
	srv, done := a.srv, a.done
	a.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Shutdown(ctx)
	if err != nil {
		_ = srv.Close()
		return fmt.Errorf("ops: admin shutdown: %w", err)
	}
	<-done
	return nil
}
