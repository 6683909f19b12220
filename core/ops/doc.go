// Package ops holds the gateway's operational plumbing: the admin HTTP
// listener (/livez, /readyz, /metrics), logger construction with secret
// redaction, the ordered shutdown manager, and the readiness probe used by
// the healthcheck subcommand.
//
// Wiring in `mimi-gateway run` (sketch):
//
//	logger, level, err := ops.NewLogger(ops.LogConfig{Format: "json", Level: "info"}, nil)
//	admin := ops.NewAdmin(ops.WithAdminLogger(logger), ops.WithBuildInfo(ops.BuildInfo{Version: v, Commit: c}))
//	addr, err := admin.Start(cfg.Admin.Addr) // default 127.0.0.1:9464
//	sd := ops.NewShutdown(30*time.Second, ops.WithShutdownLogger(logger))
//	sd.Add(ops.PhaseAdmin, "admin", admin.Shutdown)
//	sd.Add(ops.PhaseNotReady, "readiness", func(context.Context) error { admin.MarkStopping(); return nil })
//
//	st, err := store.Open(ctx, storeCfg, store.WithLogger(logger))
//	admin.MustRegister(st)               // store metrics
//	admin.AddReadiness("store", st.Ping) // readiness
//	sd.AddCloser(ops.PhaseStore, "store", st.Close)
//	// ... bus (PhaseBus, PhaseEmbeddedNATS), endpoint, adapters likewise
//
//	admin.MarkStarted()
//	<-ctx.Done()                         // SIGINT/SIGTERM
//	err = sd.Run(context.Background())
//
// /readyz answers 503 until MarkStarted, while any check fails, and after
// MarkStopping; the body names what is not ready (text, or JSON with
// Accept: application/json or ?format=json). /livez always answers 200
// while the process serves HTTP. /metrics serves a dedicated registry with
// the Go runtime and process collectors, mimi_gateway_build_info, readiness
// failure counters and whatever components register. Metric labels must
// never carry room or user IDs.
//
// Shutdown stops steps by Phase (not-ready, adapters, endpoint, bus,
// embedded NATS, store, admin), within a phase in reverse registration
// order, within one overall timeout; a step that hangs is abandoned and
// reported, later steps still run, and all errors are joined.
//
// Secrets in configuration should have type Secret, which prints as
// "[redacted]" everywhere; NewLogger additionally redacts attributes whose
// key names a secret (IsSecretKey). User and room IDs in logs go through a
// Pseudonymizer (keyed HMAC), never raw: log.Info("sent", "room", pz.Value(id)).
package ops
