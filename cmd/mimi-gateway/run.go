package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/config"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/ops"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

func newRunCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "run",
		Short: "Run the gateway",
		Long: "run starts the gateway and runs until SIGTERM or SIGINT, then shuts down in order within\n" +
			"shutdown_timeout. SIGHUP reloads the configuration. Without a configuration file it runs on\n" +
			"the built-in defaults: embedded NATS and SQLite in ./data, admin listener on 127.0.0.1:9464.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sigs := make(chan os.Signal, 4)
			signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
			defer signal.Stop(sigs)
			stopWithParent()
			return runGateway(cmd.Context(), runOptions{
				config:  g.configOptions(),
				signals: sigs,
				logOut:  cmd.ErrOrStderr(),
			})
		},
	}
}

// runOptions are the inputs of runGateway; tests fill them directly.
type runOptions struct {
	config config.Options
	// signals delivers SIGINT/SIGTERM (stop) and SIGHUP (reload).
	signals <-chan os.Signal
	// logOut receives the log.
	logOut io.Writer
	// started, if set, is called once the gateway is ready, with the admin listener's address.
	started func(adminAddr string, m *config.Manager)
	// reloaded, if set, is called after every reload attempt with its outcome.
	reloaded func(rep config.ReloadReport, err error)
}

// loadConfig loads the configuration for commands other than run.
func loadConfig(g *globalOptions) (*config.Config, error) {
	cfg, err := config.Load(g.configOptions())
	if err != nil {
		return nil, &configError{err}
	}
	return cfg, nil
}

// runGateway starts every component, serves until a stop signal or ctx ends, and shuts down in
// order. A failure during start-up stops what had started and returns the error.
func runGateway(ctx context.Context, o runOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	mgr, err := config.NewManager(o.config)
	if err != nil {
		return &configError{err}
	}
	cfg := mgr.Current()
	log, level, err := ops.NewLogger(logConfig(cfg), o.logOut)
	if err != nil {
		return &configError{err}
	}
	bi := readBuildInfo()
	source := cfg.Source()
	if source == "" {
		source = "(none: built-in defaults and environment)"
	}
	log.Info("starting mimi-gateway", "version", bi.Version, "commit", bi.Commit, "go", bi.GoVersion,
		"config", source, "domain", cfg.Domain, "data_dir", cfg.DataDirAbs(),
		"bus", cfg.Bus.Mode, "store", cfg.Store.Driver)
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}
	if err := os.MkdirAll(cfg.DataDirAbs(), 0o700); err != nil {
		return fmt.Errorf("creating data dir: %w", err)
	}

	sd := ops.NewShutdown(cfg.ShutdownTimeout, ops.WithShutdownLogger(log))
	reloadOK, reloadTime := reloadMetrics()
	// reload is the one reload path: SIGHUP and the admin console's "apply" both take it.
	reloadReport := func() (config.ReloadReport, error) {
		rep, rerr := mgr.Reload()
		logReload(log, rep, rerr)
		if rerr == nil {
			reloadOK.Set(1)
			reloadTime.SetToCurrentTime()
		} else {
			reloadOK.Set(0)
		}
		if o.reloaded != nil {
			o.reloaded(rep, rerr)
		}
		return rep, rerr
	}
	reload := func() { _, _ = reloadReport() }
	hooks := &runtimeHooks{reload: reloadReport, environ: o.config.Environ}
	mgr.OnReload(func(_, cur *config.Config) {
		if l, err := ops.ParseLevel(cur.Log.Level); err == nil && l != level.Level() {
			level.Set(l)
			log.Debug("log level changed", "level", cur.Log.Level)
		}
	})

	// Signals that arrive during start-up are recorded, never dropped: a stop signal aborts the
	// start-up (and the run ends with exit status 0 after cleaning up), SIGHUP reloads right
	// after it.
	startCtx, cancelStart := context.WithCancel(ctx)
	defer cancelStart()
	var stopSeen, hupSeen atomic.Bool
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for {
			select {
			case s := <-o.signals:
				if s == syscall.SIGHUP {
					hupSeen.Store(true)
					continue
				}
				log.Info("signal during start-up, aborting", "signal", s.String())
				stopSeen.Store(true)
				cancelStart()
				return
			case <-startCtx.Done():
				return
			}
		}
	}()
	addr, err := start(startCtx, cfg, mgr, hooks, log, sd, bi, reloadOK, reloadTime)
	cancelStart()
	<-watchDone
	if err == nil && stopSeen.Load() {
		err = errors.New("start-up aborted by a signal")
	}
	if err != nil {
		if serr := sd.Run(context.Background()); serr != nil {
			log.Error("shutdown after failed start", "err", serr)
		}
		if stopSeen.Load() {
			log.Info("stopped during start-up")
			return nil
		}
		return err
	}
	log.Info("gateway started", "admin", addr)
	if o.started != nil {
		o.started(addr, mgr)
	}
	if hupSeen.Load() {
		reload()
	}

	// Serve until a stop signal or ctx ends; reload on SIGHUP.
	for stop := false; !stop; {
		select {
		case <-ctx.Done():
			log.Info("context ended, shutting down")
			stop = true
		case s := <-o.signals:
			if s == syscall.SIGHUP {
				reload()
				continue
			}
			log.Info("signal received, shutting down", "signal", s.String(), "timeout", cfg.ShutdownTimeout.String())
			stop = true
		}
	}
	// A second stop signal during shutdown exits at once.
	shutdownDone := make(chan struct{})
	defer close(shutdownDone)
	go func() {
		for {
			select {
			case s := <-o.signals:
				if s != syscall.SIGHUP {
					log.Error("second signal, exiting without finishing shutdown", "signal", s.String())
					os.Exit(exitError)
				}
			case <-shutdownDone:
				return
			}
		}
	}()
	start := time.Now()
	if serr := sd.Run(context.Background()); serr != nil {
		log.Error("shutdown finished with errors", "err", serr, "took", time.Since(start).String())
		return fmt.Errorf("shutdown: %w", serr)
	}
	log.Info("shutdown complete", "took", time.Since(start).String())
	return nil
}

// start starts the admin listener, the store, the bus and the enabled adapters, registering each
// one's stop step with sd as it comes up. It returns the admin listener's address.
func start(ctx context.Context, cfg *config.Config, mgr *config.Manager, hooks *runtimeHooks, log *slog.Logger, sd *ops.Shutdown,
	bi buildInfo, extra ...prometheus.Collector) (string, error) {
	admin := ops.NewAdmin(ops.WithAdminLogger(log), ops.WithBuildInfo(ops.BuildInfo{Version: bi.Version, Commit: bi.Commit}))
	if err := admin.Register(extra...); err != nil {
		return "", fmt.Errorf("registering metrics: %w", err)
	}
	addr, err := admin.Start(cfg.Admin.Address)
	if err != nil {
		return "", err
	}
	sd.Add(ops.PhaseAdmin, "admin", admin.Shutdown)
	sd.Add(ops.PhaseNotReady, "readiness", func(context.Context) error { admin.MarkStopping(); return nil })

	st, err := store.Open(ctx, storeConfig(cfg), store.WithLogger(log))
	if err != nil {
		return "", fmt.Errorf("opening store: %w", err)
	}
	sd.AddCloser(ops.PhaseStore, "store", st.Close)
	if err := admin.Register(st); err != nil {
		return "", fmt.Errorf("registering store metrics: %w", err)
	}
	if err := admin.AddReadiness("store", st.Ping); err != nil {
		return "", err
	}

	bc := cfg.BusConfig()
	bc.Sealer = storeSealer{st}
	b, err := bus.Open(ctx, bc, log)
	if err != nil {
		return "", fmt.Errorf("opening bus: %w", err)
	}
	sd.Add(ops.PhaseBus, "bus", b.Close)
	if err := admin.Register(b.Collectors()...); err != nil {
		return "", fmt.Errorf("registering bus metrics: %w", err)
	}
	if err := admin.AddReadiness("bus", b.Ready); err != nil {
		return "", err
	}

	promoted := func() {}
	if cfg.HAEnabled() {
		// Several replicas: everything below runs on the leader only (docs/operations.md).
		if promoted, err = becomeLeader(ctx, cfg, st, admin, log, sd); err != nil {
			return "", fmt.Errorf("leader election: %w", err)
		}
	}

	as, err := openAssets(cfg, log, sd)
	if err != nil {
		return "", fmt.Errorf("opening the asset store: %w", err)
	}
	if hooks == nil {
		hooks = &runtimeHooks{reload: mgr.Reload}
	}
	deps := adapterDeps{Config: cfg, Manager: mgr, Bus: b, Store: st, Log: log, Admin: admin, Assets: as, Users: &userDirectory{}, Hooks: hooks}
	// The streams keep a message only for consumer groups that exist (interest retention): the
	// adapters' groups are declared before the endpoint can publish to them.
	for _, spec := range adapters {
		if n := event.Network(spec.name); spec.enabled(cfg) && n.Valid() {
			if err := b.DeclareIn(ctx, adapterConsumer(spec.name), n); err != nil {
				return "", fmt.Errorf("declaring the %s adapter's consumers: %w", spec.name, err)
			}
		}
	}
	// Core components (the MIMI endpoint) start before the adapters and stop after them.
	for _, c := range components {
		stop, err := c.start(ctx, deps)
		if err != nil {
			return "", fmt.Errorf("starting %s: %w", c.name, err)
		}
		sd.Add(ops.PhaseEndpoint, c.name, stop)
	}
	for _, spec := range adapters {
		if !spec.enabled(cfg) {
			continue
		}
		if err := startAdapter(ctx, spec, deps, sd); err != nil {
			return "", err
		}
	}
	deps.Users.markComplete()
	// The admin console comes up last (everything it shows is running) and stops first.
	if err := startConsole(ctx, deps, sd); err != nil {
		return "", fmt.Errorf("starting the admin console: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("start-up aborted: %w", err)
	}
	admin.MarkStarted()
	promoted()
	return addr.String(), nil
}

// adapterConsumer is the consumer group name of an adapter.
func adapterConsumer(name string) string { return "adapter-" + name }

// startAdapter builds and starts one network adapter, connects it to its bus subjects and
// registers its stop steps.
func startAdapter(ctx context.Context, spec adapterSpec, d adapterDeps, sd *ops.Shutdown) error {
	a, err := spec.build(ctx, d.Config, bridges.Deps{Store: d.Store, Bus: d.Bus, Assets: d.Assets, Logger: d.Log, Registerer: d.Admin.Registry(),
		Reach: reachBridge{hooks: d.Hooks}})
	if err != nil {
		return fmt.Errorf("%s adapter: %w", spec.name, err)
	}
	if err := d.Admin.AddReadiness(spec.name, a.Ready); err != nil {
		return err
	}
	if err := a.Start(ctx); err != nil {
		return fmt.Errorf("starting %s adapter: %w", spec.name, err)
	}
	sd.Add(ops.PhaseAdapters, spec.name, a.Stop)
	if d.Users != nil {
		d.Users.add(a)
	}
	sub, err := bridges.Run(ctx, d.Bus, adapterConsumer(spec.name), a, d.Log.With("component", "adapter."+spec.name))
	if err != nil {
		return fmt.Errorf("consuming for %s adapter: %w", spec.name, err)
	}
	// Registered after the adapter, so it stops first (reverse order within a phase): no new
	// deliveries reach an adapter that is stopping.
	sd.Add(ops.PhaseAdapters, spec.name+"-consumer", sub.Stop)
	return nil
}

func logReload(log *slog.Logger, rep config.ReloadReport, err error) {
	if err != nil {
		log.Error("configuration reload failed; the running configuration is unchanged", "err", err.Error())
		return
	}
	log.Info("configuration reloaded", "applied", rep.Applied)
	if len(rep.Kept) > 0 {
		log.Warn("configuration changes that need a restart were not applied", "keys", rep.Kept)
	}
}

// reloadMetrics are named like Prometheus's own reload metrics.
func reloadMetrics() (prometheus.Gauge, prometheus.Gauge) {
	ok := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "mimi_gateway_config_last_reload_successful",
		Help: "Whether the last configuration reload succeeded (1) or failed (0).",
	})
	ok.Set(1)
	ts := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "mimi_gateway_config_last_reload_success_timestamp_seconds",
		Help: "Time of the last successful configuration load or reload.",
	})
	ts.SetToCurrentTime()
	return ok, ts
}
