package main

import (
	"context"
	"time"

	"github.com/mimi-gateway/mimi-gateway/bridges/idmap"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp"
	"github.com/mimi-gateway/mimi-gateway/config"
	"github.com/mimi-gateway/mimi-gateway/core/abuse"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/consent"
	"github.com/mimi-gateway/mimi-gateway/core/console"
	"github.com/mimi-gateway/mimi-gateway/core/ops"
	"github.com/mimi-gateway/mimi-gateway/core/provider"
	"github.com/mimi-gateway/mimi-gateway/core/retention"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// startRetention runs the retention sweeper over every category of the retention section.
func startRetention(_ context.Context, d adapterDeps) (ops.StopFunc, error) {
	sw, err := newSweeper(d.Config, d.Store, d.Bus, d.Assets, retention.WithLogger(d.Log.With("component", "retention")))
	if err != nil {
		return nil, err
	}
	if err := d.Admin.Register(sw.Collectors()...); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); sw.Run(ctx, d.Config.Retention.Interval) }()
	return func(context.Context) error { cancel(); <-done; return nil }, nil
}

// assetPruner is what the sweeper needs of the asset store.
type assetPruner interface {
	PruneBefore(ctx context.Context, before time.Time) (int64, error)
}

// deadLetterPruner is what the sweeper needs of the bus.
type deadLetterPruner interface {
	PruneDeadLetters(ctx context.Context, before time.Time) (int64, error)
}

// newSweeper registers one category per kind of record. A category whose tables a component has
// not created (its component never ran) removes nothing.
func newSweeper(c *config.Config, st *store.Store, b bus.Bus, as assetPruner, opts ...retention.Option) (*retention.Sweeper, error) {
	r := c.Retention
	sw := retention.New(opts...)
	// ifMigrated runs sweep only once component's tables exist.
	ifMigrated := func(component string, sweep retention.SweepFunc) retention.SweepFunc {
		return func(ctx context.Context, before time.Time) (int64, error) {
			if v, err := st.SchemaVersion(ctx, component); err != nil || v == 0 {
				return 0, err
			}
			return sweep(ctx, before)
		}
	}
	pruneIDs := func(ctx context.Context, before time.Time) (int64, error) {
		n, err := ifMigrated(idmap.Component, func(ctx context.Context, before time.Time) (int64, error) {
			return idmap.Prune(ctx, st, before)
		})(ctx, before)
		if err != nil {
			return n, err
		}
		m, err := ifMigrated("provider", func(ctx context.Context, before time.Time) (int64, error) {
			return provider.PruneMessageMap(ctx, st, before)
		})(ctx, before)
		return n + m, err
	}
	cats := []retention.Category{
		{Name: "id_mappings", MaxAge: r.IDMappings, Sweep: pruneIDs},
		{Name: "dedupe_marks", MaxAge: r.DedupeMarks, Sweep: st.PruneProcessed},
		{Name: "muc_history", MaxAge: r.MUCHistory, Sweep: ifMigrated(xmpp.Component, func(ctx context.Context, before time.Time) (int64, error) {
			return xmpp.PruneHistory(ctx, st, before)
		})},
		{Name: "audit_log", MaxAge: r.AuditLog, Sweep: ifMigrated("console", func(ctx context.Context, before time.Time) (int64, error) {
			return console.PruneAudit(ctx, st, before)
		})},
		{Name: "abuse_reports", MaxAge: r.AbuseReports, Sweep: ifMigrated(abuse.Component, func(ctx context.Context, before time.Time) (int64, error) {
			return abuse.Prune(ctx, st, before)
		})},
		{Name: "consent_records", MaxAge: r.ConsentRecords, Sweep: ifMigrated("consent", func(ctx context.Context, before time.Time) (int64, error) {
			return consent.PruneRecords(ctx, st, before)
		})},
	}
	if as != nil {
		cats = append(cats, retention.Category{Name: "assets", MaxAge: r.Assets, Sweep: as.PruneBefore})
	}
	if dl, ok := b.(deadLetterPruner); ok {
		cats = append(cats, retention.Category{Name: "dead_letters", MaxAge: r.DeadLetters, Sweep: dl.PruneDeadLetters})
	}
	for _, cat := range cats {
		if err := sw.Register(cat); err != nil {
			return nil, err
		}
	}
	return sw, nil
}
