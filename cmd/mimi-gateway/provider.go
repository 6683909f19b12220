package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/ops"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/provider"
)

func init() { registerComponent("provider", startProvider) }

// startProvider starts the MIMI endpoint when mimi.address is set: the provider (core/provider)
// behind the mutual-TLS server (core/protocol), with a client for the configured partners.
func startProvider(ctx context.Context, d adapterDeps) (ops.StopFunc, error) {
	cfg := d.Config
	log := d.Log.With("component", "provider")
	if cfg.MIMI.Address == "" {
		log.Info("mimi.address is empty: the MIMI endpoint is disabled")
		return nil, nil // nothing to stop (ops.Shutdown skips a nil step)
	}
	cert, pool, err := protocol.TLSFromConfig(cfg.MIMI)
	if err != nil {
		return nil, err
	}
	ps, err := protocol.PartnersFromConfig(cfg.Partners)
	if err != nil {
		return nil, fmt.Errorf("partners: %w", err)
	}
	partners := protocol.NewPartners(ps...)
	domain := event.Domain(cfg.Domain)
	p, err := provider.New(ctx, provider.Config{Domain: domain, Store: d.Store, Bus: d.Bus, Logger: d.Log})
	if err != nil {
		return nil, err
	}
	client, err := protocol.NewClient(protocol.ClientConfig{Domain: domain, Certificate: cert, Partners: partners, Logger: d.Log})
	if err != nil {
		return nil, err
	}
	srv, err := protocol.NewServer(protocol.ServerConfig{Domain: domain, Certificate: cert, ClientCAs: pool,
		Partners: partners, Handler: p, Store: d.Store, Logger: d.Log})
	if err != nil {
		return nil, err
	}
	addr, err := srv.Listen(cfg.MIMI.Address)
	if err != nil {
		return nil, fmt.Errorf("mimi.address: %w", err)
	}
	if err := p.Start(ctx, client); err != nil {
		return nil, errors.Join(err, srv.Shutdown(ctx))
	}
	log.Info("MIMI endpoint listening", "address", addr.String(), "partners", len(ps))
	return func(ctx context.Context) error {
		err := srv.Shutdown(ctx)
		err = errors.Join(err, p.Close(ctx))
		client.CloseIdleConnections()
		return err
	}, nil
}
