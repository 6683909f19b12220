package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Phase orders shutdown steps. Lower phases stop first.
type Phase int

// The documented shutdown order (docs: "adapters, endpoint, bus drain,
// embedded NATS, store"), framed by readiness and the admin listener.
const (
	// PhaseNotReady: flip /readyz to 503 (Admin.MarkStopping) and wait out
	// an optional delay so load balancers stop sending traffic.
	PhaseNotReady Phase = iota
	// PhaseAdapters: Matrix and XMPP adapters stop accepting native events
	// and finish the ones in flight (their acks depend on the bus).
	PhaseAdapters
	// PhaseEndpoint: the MIMI endpoint and its HTTPS server.
	PhaseEndpoint
	// PhaseBus: consumer drain, outstanding publish acks, client drain.
	PhaseBus
	// PhaseEmbeddedNATS: the in-process NATS server.
	PhaseEmbeddedNATS
	// PhaseStore: the SQL store (last user of the disk).
	PhaseStore
	// PhaseAdmin: the admin listener, so /livez and /metrics answer until
	// the end.
	PhaseAdmin
)

var phaseNames = map[Phase]string{
	PhaseNotReady:     "not-ready",
	PhaseAdapters:     "adapters",
	PhaseEndpoint:     "endpoint",
	PhaseBus:          "bus",
	PhaseEmbeddedNATS: "embedded-nats",
	PhaseStore:        "store",
	PhaseAdmin:        "admin",
}

// String returns the phase name.
func (p Phase) String() string {
	if n, ok := phaseNames[p]; ok {
		return n
	}
	return fmt.Sprintf("phase-%d", int(p))
}

// StopFunc stops one component. It should return when the component has
// stopped or ctx is done, whichever comes first.
type StopFunc func(ctx context.Context) error

// ErrStopTimeout is wrapped by the error of a step that did not return in
// time.
var ErrStopTimeout = errors.New("did not stop in time")

// Defaults for Shutdown.
const (
	// DefaultShutdownTimeout is the overall timeout when NewShutdown gets
	// a non-positive one.
	DefaultShutdownTimeout = 30 * time.Second
	// DefaultGraceAfterDeadline is how long a step that starts after the
	// overall deadline has passed may take: it still runs (so the store is
	// closed even when the bus drain hung), with an expired context.
	DefaultGraceAfterDeadline = time.Second
)

// settleAfterDeadline is how long runStep still waits for a step after its
// context ended before abandoning it.
const settleAfterDeadline = 250 * time.Millisecond

type step struct {
	phase Phase
	name  string
	stop  StopFunc
	seq   int
}

// Shutdown stops registered components in phase order within an overall
// timeout. Within one phase, steps run one after another in reverse
// registration order (like defer). Every step runs even when earlier ones
// failed or timed out; a step that outlives the deadline is abandoned (its
// goroutine keeps running) and reported with ErrStopTimeout. It is safe for
// concurrent use; Run executes once.
type Shutdown struct {
	log     *slog.Logger
	timeout time.Duration
	grace   time.Duration

	mu    sync.Mutex
	steps []step
	seq   int

	once sync.Once
	err  error
	done chan struct{}
}

// ShutdownOption customises NewShutdown.
type ShutdownOption func(*Shutdown)

// WithShutdownLogger sets the logger (default: discard).
func WithShutdownLogger(l *slog.Logger) ShutdownOption {
	return func(s *Shutdown) {
		if l != nil {
			s.log = l
		}
	}
}

// WithGraceAfterDeadline sets how long steps that start after the overall
// deadline may run.
func WithGraceAfterDeadline(d time.Duration) ShutdownOption {
	return func(s *Shutdown) {
		if d > 0 {
			s.grace = d
		}
	}
}

// NewShutdown creates a shutdown manager with an overall timeout
// (DefaultShutdownTimeout when <= 0).
func NewShutdown(timeout time.Duration, opts ...ShutdownOption) *Shutdown {
	if timeout <= 0 {
		timeout = DefaultShutdownTimeout
	}
	s := &Shutdown{
		log:     slog.New(slog.DiscardHandler),
		timeout: timeout,
		grace:   DefaultGraceAfterDeadline,
		done:    make(chan struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	s.log = s.log.With("component", "ops.shutdown")
	return s
}

// Add registers a component's stop function in a phase. Register in start
// order; Run stops in phase order and, within a phase, in reverse.
func (s *Shutdown) Add(phase Phase, name string, stop StopFunc) {
	if stop == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	s.steps = append(s.steps, step{phase: phase, name: name, stop: stop, seq: s.seq})
}

// AddCloser registers a Close() error method (e.g. the store) as a step.
func (s *Shutdown) AddCloser(phase Phase, name string, closeFn func() error) {
	if closeFn == nil {
		return
	}
	s.Add(phase, name, func(context.Context) error { return closeFn() })
}

// Order returns "phase/name" of each step in the order Run stops them.
func (s *Shutdown) Order() []string {
	steps := s.ordered()
	out := make([]string, len(steps))
	for i, st := range steps {
		out[i] = st.phase.String() + "/" + st.name
	}
	return out
}

func (s *Shutdown) ordered() []step {
	s.mu.Lock()
	steps := slices.Clone(s.steps)
	s.mu.Unlock()
	slices.SortStableFunc(steps, func(a, b step) int {
		if a.phase != b.phase {
			return int(a.phase) - int(b.phase)
		}
		return b.seq - a.seq
	})
	return steps
}

// Run stops everything once and returns the joined errors of all steps
// (each wrapped with its name). Later calls wait for the first and return
// the same result. ctx can cut the overall timeout short.
func (s *Shutdown) Run(ctx context.Context) error {
	s.once.Do(func() {
		defer close(s.done)
		s.err = s.run(ctx)
	})
	<-s.done
	return s.err
}

// Done is closed when Run has finished.
func (s *Shutdown) Done() <-chan struct{} { return s.done }

func (s *Shutdown) run(parent context.Context) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), s.timeout)
	defer cancel()
	// parent may still shorten the deadline (e.g. a second signal).
	stopParent := context.AfterFunc(parent, cancel)
	defer stopParent()

	steps := s.ordered()
	s.log.Info("shutting down", "steps", len(steps), "timeout", s.timeout)
	var errs []error
	for _, st := range steps {
		stepCtx := ctx
		var stepCancel context.CancelFunc = func() {}
		if ctx.Err() != nil {
			// The overall deadline has passed. The step still runs (the
			// store must be closed even if the bus drain hung), with a
			// short grace period of its own instead of an expired context.
			stepCtx, stepCancel = context.WithTimeout(context.WithoutCancel(ctx), s.grace)
		}
		t0 := time.Now()
		s.log.Info("stopping", "phase", st.phase.String(), "name", st.name)
		err := runStep(stepCtx, st)
		stepCancel()
		d := time.Since(t0)
		if err != nil {
			err = fmt.Errorf("shutdown %s/%s: %w", st.phase, st.name, err)
			errs = append(errs, err)
			s.log.Error("stop failed", "phase", st.phase.String(), "name", st.name, "duration", d, "err", err)
			continue
		}
		s.log.Info("stopped", "phase", st.phase.String(), "name", st.name, "duration", d)
	}
	err := errors.Join(errs...)
	s.log.Info("shutdown complete", "duration", time.Since(start), "failed_steps", len(errs))
	return err
}

// runStep runs one stop function and stops waiting for it when ctx ends.
func runStep(ctx context.Context, st step) error {
	errc := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				errc <- fmt.Errorf("panic: %v", p)
			}
		}()
		errc <- st.stop(ctx)
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		// A step that honours its context returns right after it ends; let
		// it report its own error before declaring it hung.
		t := time.NewTimer(settleAfterDeadline)
		defer t.Stop()
		select {
		case err := <-errc:
			return err
		case <-t.C:
		}
		return fmt.Errorf("%w: %w", ErrStopTimeout, context.Cause(ctx))
	}
}
