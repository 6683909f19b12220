package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mimi-gateway/mimi-gateway/config"
	"github.com/mimi-gateway/mimi-gateway/core/consent"
	"github.com/mimi-gateway/mimi-gateway/core/directory"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/ops"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/provider"
)

// startProvider starts the MIMI endpoint when mimi.address is set: the provider (core/provider)
// behind the mutual-TLS server (core/protocol), with a client for the configured partners.
func startProvider(ctx context.Context, d adapterDeps) (ops.StopFunc, error) {
	cfg := d.Config
	log := d.Log.With("component", "provider")
	if cfg.MIMI.Address == "" {
		log.Info("mimi.address is empty: the MIMI endpoint is disabled")
		return nil, nil // nothing to stop (ops.Shutdown skips a nil step)
	}
	cert, pool, err := protocol.LoadTLS(cfg.MIMI.CertFile, cfg.MIMI.KeyFile, cfg.MIMI.ClientCAFile)
	if err != nil {
		return nil, err
	}
	ps, err := protocol.PartnersFromConfig(cfg.Partners)
	if err != nil {
		return nil, fmt.Errorf("partners: %w", err)
	}
	partners := protocol.NewPartners(ps...)
	domain := event.Domain(cfg.Domain)
	// Dedupe records outlive the bus's retention (a mimi.out redelivery), whatever it is set to.
	retention := max(provider.DefaultDedupeRetention, cfg.Bus.MaxAge+24*time.Hour)
	reach := consent.Reachability(cfg.MIMI.Reachability)
	if reach == "" {
		reach = consent.Partners // a configuration built in code without the example's defaults
	}
	cs, err := consent.New(ctx, d.Store, reach)
	if err != nil {
		return nil, fmt.Errorf("mimi.reachability: %w", err)
	}
	dir, err := directoryOf(cfg)
	if err != nil {
		return nil, err
	}
	pc := provider.Config{Directory: dir, Domain: domain, Store: d.Store, Bus: d.Bus, Logger: d.Log, DedupeRetention: retention,
		UsersOnDemand: cfg.MIMI.UsersOnDemand, UnreachableNotice: cfg.MIMI.UnreachableNotice, Reach: cs,
		ClaimedExpiry: cfg.MIMI.KeyPackages.ClaimedExpiry, MaxClaimed: cfg.MIMI.KeyPackages.MaxClaimed}
	if d.Users != nil {
		pc.Users = d.Users
	}
	var reg prometheus.Registerer
	if d.Admin != nil {
		reg = d.Admin.Registry()
	}
	pc.Registerer = reg
	var limits protocol.Limits
	if d.Assets != nil {
		pc.Assets, limits.Asset = d.Assets, d.Assets.MaxCiphertext()
	}
	p, err := provider.New(ctx, pc)
	if err != nil {
		return nil, err
	}
	client, err := protocol.NewClient(protocol.ClientConfig{Domain: domain, Certificate: cert, Partners: partners, Logger: d.Log, Registerer: reg})
	if err != nil {
		return nil, err
	}
	if d.Assets != nil {
		d.Assets.SetDownloader(client) // partners' attachments: direct or through the room's hub
	}
	ml := cfg.MIMI.Limits
	srv, err := protocol.NewServer(protocol.ServerConfig{Domain: domain, Certificate: cert, ClientCAs: pool,
		Partners: partners, Handler: p, Store: d.Store, Logger: d.Log, Limits: limits, Registerer: reg, PeerSeen: client.PartnerAnswered,
		BodyBudget: int64(ml.BodyBudget), PartnerConcurrency: ml.PartnerConcurrency,
		KeyMaterialPartnerRate: protocol.RateLimit{Interval: ml.KeyMaterial.PartnerInterval, Burst: ml.KeyMaterial.PartnerBurst},
		KeyMaterialTargetRate:  protocol.RateLimit{Interval: ml.KeyMaterial.TargetInterval, Burst: ml.KeyMaterial.TargetBurst}})
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
	if d.Admin != nil {
		if err := d.Admin.AddReadiness("mimi", srv.Ready); err != nil {
			return nil, errors.Join(err, p.Close(ctx), srv.Shutdown(ctx))
		}
	}
	if d.Hooks != nil {
		d.Hooks.partnerClient.Store(client) // the admin console's partner view and "check now"
		d.Hooks.provider.Store(p)           // its credential alerts; erasure's SelfRemoves
	}
	var stopped atomic.Bool
	if d.Manager != nil {
		d.Manager.OnReload(func(_, cur *config.Config) {
			if !stopped.Load() {
				reloadPartners(log, partners, cur.Partners)
			}
		})
	}
	log.Info("MIMI endpoint listening", "address", addr.String(), "partners", len(ps))
	return func(ctx context.Context) error {
		stopped.Store(true)
		if d.Hooks != nil {
			d.Hooks.partnerClient.Store(nil)
			d.Hooks.provider.Store(nil)
		}
		err := srv.Shutdown(ctx)
		err = errors.Join(err, p.Close(ctx))
		client.CloseIdleConnections()
		return err
	}, nil
}

// reloadPartners swaps the live partner set of the running server and client (SIGHUP): a new
// partner can call and be called at once, a removed one is refused from its next request on,
// also on a connection it keeps open. A list that cannot be loaded (an unreadable ca_file)
// keeps the running set.
func reloadPartners(log *slog.Logger, live *protocol.Partners, cps []config.Partner) {
	ps, err := protocol.PartnersFromConfig(cps)
	if err != nil {
		log.Error("partners not reloaded; the running partner set is unchanged", "err", err)
		return
	}
	live.Set(ps)
	log.Info("partners reloaded", "partners", len(ps))
}

// directoryOf builds the published directory of mimi.directory.
func directoryOf(cfg *config.Config) (*directory.Directory, error) {
	dc := directory.Config{Domain: event.Domain(cfg.Domain)}
	for _, f := range cfg.MIMI.Directory.Publish {
		dc.Publish = append(dc.Publish, directory.Field(f))
	}
	for _, e := range cfg.MIMI.Directory.Entries {
		dc.Entries = append(dc.Entries, directory.Entry{User: e.User, Name: e.Name, Nick: e.Nick, Email: e.Email, Phone: e.Phone})
	}
	d, err := directory.New(dc)
	if err != nil {
		return nil, fmt.Errorf("mimi.directory: %w", err)
	}
	return d, nil
}
