package main

import (
	"context"
	"log/slog"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp"
	"github.com/mimi-gateway/mimi-gateway/config"
	"github.com/mimi-gateway/mimi-gateway/core/assets"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/ops"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// adapterDeps is what an adapter or a core component gets from the run command.
type adapterDeps struct {
	// Config is the configuration at start; adapters that support reload read Manager.Current.
	Config *config.Config
	// Manager holds the running configuration.
	Manager *config.Manager
	Bus     bus.Bus
	Store   *store.Store
	Log     *slog.Logger
	// Admin lets an adapter register metrics and readiness checks.
	Admin *ops.Admin
	// Assets is the attachment store shared by the adapters and the MIMI endpoint.
	Assets *assets.Store
	// Users is the directory of local users over the started adapters (the MIMI endpoint asks
	// it about users who have not used the gateway yet).
	Users *userDirectory
	// Hooks are what components share with the admin console at run time (never nil in run).
	Hooks *runtimeHooks
}

// The attachment store the run command shares is the one the adapters expect.
var _ bridges.AssetStore = (*assets.Store)(nil)

// adapterSpec is a network adapter the run command can start.
type adapterSpec struct {
	// name is the network and the bridges.<name> config section, e.g. "matrix".
	name string
	// enabled reports whether the configuration asks for the adapter.
	enabled func(*config.Config) bool
	// build creates the adapter (without starting it) from its configuration section.
	build func(ctx context.Context, c *config.Config, deps bridges.Deps) (bridges.Adapter, error)
}

// adapters is every network adapter of this binary. Each has the same constructor shape
// (New(ctx, cfg, bridges.Deps)) and readiness (bridges.Adapter.Ready).
var adapters = []adapterSpec{
	{"matrix", func(c *config.Config) bool { return c.Bridges.Matrix.Enabled },
		func(ctx context.Context, c *config.Config, deps bridges.Deps) (bridges.Adapter, error) {
			return matrix.New(ctx, c.MatrixConfig(), deps)
		}},
	{"xmpp", func(c *config.Config) bool { return c.Bridges.XMPP.Enabled },
		func(ctx context.Context, c *config.Config, deps bridges.Deps) (bridges.Adapter, error) {
			return xmpp.New(ctx, c.XMPPConfig(), deps)
		}},
}

// componentSpec is a core component that run starts after the store and the bus and before the
// adapters, such as the MIMI endpoint (core/provider with the core/protocol server).
type componentSpec struct {
	name string
	// start starts the component and returns how to stop it; run calls stop in the endpoint
	// phase of the shutdown (after the adapters, before the bus).
	start func(ctx context.Context, d adapterDeps) (ops.StopFunc, error)
}

// components are the core components run starts, in this order (and stops in the reverse
// order): erasure requests, the MIMI endpoint, the retention sweeper.
var components = []componentSpec{
	{"erasure", startErasure},
	{"provider", startProvider},
	{"retention", startRetention},
}
