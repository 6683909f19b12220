package ops_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mimi-gateway/mimi-gateway/core/ops"
)

// recorder collects the order in which steps ran.
type recorder struct {
	mu  sync.Mutex
	ran []string
}

func (r *recorder) step(name string, err error) ops.StopFunc {
	return func(context.Context) error {
		r.mu.Lock()
		r.ran = append(r.ran, name)
		r.mu.Unlock()
		return err
	}
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ran)
}

func TestShutdownOrder(t *testing.T) {
	type reg struct {
		phase ops.Phase
		name  string
	}
	cases := []struct {
		name string
		regs []reg
		want []string
	}{
		{
			name: "documented order regardless of registration order",
			regs: []reg{
				{ops.PhaseAdmin, "admin"},
				{ops.PhaseStore, "store"},
				{ops.PhaseEmbeddedNATS, "nats"},
				{ops.PhaseBus, "bus"},
				{ops.PhaseEndpoint, "endpoint"},
				{ops.PhaseAdapters, "matrix"},
				{ops.PhaseNotReady, "readiness"},
			},
			want: []string{"readiness", "matrix", "endpoint", "bus", "nats", "store", "admin"},
		},
		{
			name: "reverse registration order within a phase",
			regs: []reg{
				{ops.PhaseAdapters, "matrix"},
				{ops.PhaseStore, "store"},
				{ops.PhaseAdapters, "xmpp"},
				{ops.PhaseBus, "consumer"},
				{ops.PhaseBus, "publisher"},
			},
			want: []string{"xmpp", "matrix", "publisher", "consumer", "store"},
		},
		{name: "empty", regs: nil, want: nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var r recorder
			sd := ops.NewShutdown(5 * time.Second)
			for _, rg := range c.regs {
				sd.Add(rg.phase, rg.name, r.step(rg.name, nil))
			}
			if err := sd.Run(t.Context()); err != nil {
				t.Fatal(err)
			}
			if got := r.got(); !slices.Equal(got, c.want) {
				t.Errorf("ran %v, want %v", got, c.want)
			}
			if len(c.want) > 0 && len(sd.Order()) != len(c.want) {
				t.Errorf("Order() = %v", sd.Order())
			}
		})
	}
}

func TestShutdownErrorsAndTimeouts(t *testing.T) {
	errBus := errors.New("drain failed")
	cases := []struct {
		name        string
		timeout     time.Duration
		setup       func(sd *ops.Shutdown, r *recorder, release <-chan struct{})
		wantRan     []string
		wantErrs    []string
		wantTimeout bool
		wantIs      error
	}{
		{
			name:    "errors are joined and every step runs",
			timeout: 5 * time.Second,
			setup: func(sd *ops.Shutdown, r *recorder, _ <-chan struct{}) {
				sd.Add(ops.PhaseAdapters, "matrix", r.step("matrix", errors.New("close stream")))
				sd.Add(ops.PhaseBus, "bus", r.step("bus", errBus))
				sd.AddCloser(ops.PhaseStore, "store", func() error { return r.step("store", nil)(nil) })
			},
			wantRan:  []string{"matrix", "bus", "store"},
			wantErrs: []string{"shutdown adapters/matrix: close stream", "shutdown bus/bus: drain failed"},
			wantIs:   errBus,
		},
		{
			name:    "a hung step is abandoned at the deadline, later steps still run",
			timeout: 100 * time.Millisecond,
			setup: func(sd *ops.Shutdown, r *recorder, release <-chan struct{}) {
				sd.Add(ops.PhaseBus, "bus", func(context.Context) error {
					r.step("bus", nil)(nil)
					<-release // ignores its context
					return nil
				})
				sd.Add(ops.PhaseEmbeddedNATS, "nats", func(ctx context.Context) error {
					// Runs after the deadline with a fresh grace context.
					if ctx.Err() != nil {
						return errors.New("got an expired context")
					}
					return r.step("nats", nil)(ctx)
				})
				sd.AddCloser(ops.PhaseStore, "store", func() error { return r.step("store", nil)(nil) })
			},
			wantRan:     []string{"bus", "nats", "store"},
			wantErrs:    []string{"shutdown bus/bus: did not stop in time"},
			wantTimeout: true,
		},
		{
			name:    "a step honouring its context returns the context error",
			timeout: 50 * time.Millisecond,
			setup: func(sd *ops.Shutdown, r *recorder, _ <-chan struct{}) {
				sd.Add(ops.PhaseEndpoint, "endpoint", func(ctx context.Context) error {
					r.step("endpoint", nil)(ctx)
					<-ctx.Done()
					return ctx.Err()
				})
			},
			wantRan:  []string{"endpoint"},
			wantErrs: []string{"shutdown endpoint/endpoint: context deadline exceeded"},
		},
		{
			name:    "a panicking step is reported",
			timeout: time.Second,
			setup: func(sd *ops.Shutdown, r *recorder, _ <-chan struct{}) {
				sd.Add(ops.PhaseAdapters, "xmpp", func(context.Context) error { panic("nil map") })
				sd.AddCloser(ops.PhaseStore, "store", func() error { return r.step("store", nil)(nil) })
			},
			wantRan:  []string{"store"},
			wantErrs: []string{"shutdown adapters/xmpp: panic: nil map"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			release := make(chan struct{})
			defer close(release)
			var r recorder
			var logs bytes.Buffer
			sd := ops.NewShutdown(c.timeout,
				ops.WithShutdownLogger(slog.New(slog.NewTextHandler(&logs, nil))),
				ops.WithGraceAfterDeadline(time.Second))
			c.setup(sd, &r, release)
			err := sd.Run(t.Context())
			if got := r.got(); !slices.Equal(got, c.wantRan) {
				t.Errorf("ran %v, want %v", got, c.wantRan)
			}
			if len(c.wantErrs) == 0 && err != nil {
				t.Fatalf("err = %v", err)
			}
			for _, w := range c.wantErrs {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to contain %q", err, w)
				}
			}
			if c.wantTimeout != errors.Is(err, ops.ErrStopTimeout) {
				t.Errorf("errors.Is(err, ErrStopTimeout) = %v, want %v", !c.wantTimeout, c.wantTimeout)
			}
			if c.wantIs != nil && !errors.Is(err, c.wantIs) {
				t.Errorf("errors.Is(err, %v) = false", c.wantIs)
			}
			for _, step := range c.wantRan {
				if !strings.Contains(logs.String(), "name="+step) {
					t.Errorf("log does not mention step %s:\n%s", step, logs.String())
				}
			}
			if !strings.Contains(logs.String(), "shutdown complete") || !strings.Contains(logs.String(), "duration=") {
				t.Errorf("log lacks completion and durations:\n%s", logs.String())
			}
		})
	}
}

func TestShutdownRunOnce(t *testing.T) {
	var r recorder
	sd := ops.NewShutdown(time.Second)
	sd.Add(ops.PhaseStore, "store", r.step("store", errors.New("x")))
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() { errs[i] = sd.Run(context.Background()) })
	}
	wg.Wait()
	<-sd.Done()
	if got := r.got(); len(got) != 1 {
		t.Fatalf("store stopped %d times", len(got))
	}
	for _, err := range errs {
		if err == nil || err.Error() != errs[0].Error() {
			t.Errorf("Run results differ: %v", errs)
		}
	}
}

func TestShutdownParentCancelShortensDeadline(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	var r recorder
	sd := ops.NewShutdown(time.Hour, ops.WithGraceAfterDeadline(time.Second))
	sd.Add(ops.PhaseBus, "bus", func(context.Context) error { <-release; return nil })
	sd.AddCloser(ops.PhaseStore, "store", func() error { return r.step("store", nil)(nil) })
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // e.g. a second SIGTERM: stop waiting
	err := sd.Run(ctx)
	if !errors.Is(err, ops.ErrStopTimeout) {
		t.Fatalf("err = %v, want ErrStopTimeout for the hung bus", err)
	}
	if got := r.got(); !slices.Equal(got, []string{"store"}) {
		t.Fatalf("ran %v, want the store closed anyway", got)
	}
}

func TestPhaseString(t *testing.T) {
	if ops.PhaseEmbeddedNATS.String() != "embedded-nats" || ops.Phase(42).String() != "phase-42" {
		t.Error("Phase.String wrong")
	}
}
