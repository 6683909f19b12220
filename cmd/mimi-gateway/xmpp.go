package main

import (
	"context"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp"
	"github.com/mimi-gateway/mimi-gateway/config"
)

func init() {
	registerAdapter("xmpp", func(c *config.Config) bool { return c.Bridges.XMPP.Enabled }, buildXMPPAdapter)
}

// buildXMPPAdapter creates the XMPP component adapter for `run`.
func buildXMPPAdapter(ctx context.Context, d adapterDeps) (bridges.Adapter, error) {
	cfg := xmpp.FromConfig(d.Config.Bridges.XMPP, d.Config.Domain)
	a, err := xmpp.New(ctx, cfg, d.Store, d.Bus, xmpp.WithLogger(d.Log),
		xmpp.WithRegisterer(d.Admin.Registry()), xmpp.WithAssets(d.Assets))
	if err != nil {
		return nil, err
	}
	if err := d.Admin.AddReadiness("xmpp", a.Ready); err != nil {
		return nil, err
	}
	return a, nil
}
