package main

import (
	"context"
	"log/slog"

	"github.com/mimi-gateway/mimi-gateway/config"
	"github.com/mimi-gateway/mimi-gateway/core/assets"
	"github.com/mimi-gateway/mimi-gateway/core/ops"
)

// openAssets opens the one attachment store that the adapters (Put, Open) and the MIMI endpoint
// (serving /assets/<id>, /proxyDownload, downloads from partners) share, in mimi.assets.dir
// (default <data_dir>/assets; one directory that several replicas mount), and starts its sweeper, which stops in the endpoint phase of the shutdown.
func openAssets(cfg *config.Config, log *slog.Logger, sd *ops.Shutdown) (*assets.Store, error) {
	a := cfg.AssetsConfig()
	st, err := assets.New(a.Dir, cfg.Domain, int64(a.MaxSize), assets.WithExpiry(a.Expiry), assets.WithLogger(log.With("component", "assets")))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); st.Run(ctx, a.SweepInterval) }()
	sd.Add(ops.PhaseEndpoint, "asset-sweeper", func(context.Context) error { cancel(); <-done; return nil })
	return st, nil
}
