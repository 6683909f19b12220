package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mimi-gateway/mimi-gateway/config"
	"github.com/mimi-gateway/mimi-gateway/core/lease"
	"github.com/mimi-gateway/mimi-gateway/core/ops"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// leaseName is the one lease of a gateway's replicas: its holder runs everything that must run
// once per provider (the MIMI endpoint with hub, outbox and inbox, the adapters, the sweeps).
const leaseName = "gateway"

// exitLeaseLost is the exit status of a leader that lost its lease: it stops at once, writes
// nothing more (its store is fenced anyway) and comes back as a standby when restarted.
const exitLeaseLost = 3

// becomeLeader runs when several replicas share the provider (cfg.HAEnabled): it marks the
// replica ready as a standby, forwards partners' connections on mimi.address to the leader,
// and waits until this replica holds the lease. Then it fences the store with the lease
// (core/lease), arranges for the process to exit if the lease is lost, and registers the
// release after the last write of the shutdown. It returns when start-up may go on as leader,
// with promoted, which start calls once everything the leader runs is up: until then the
// replica is not ready (readiness check "leader").
func becomeLeader(ctx context.Context, cfg *config.Config, st *store.Store, admin *ops.Admin, log *slog.Logger, sd *ops.Shutdown) (promoted func(), err error) {
	advertise := cfg.HA.AdvertiseAddress
	if advertise == "" {
		advertise = cfg.MIMI.Address
	}
	l, err := lease.New(ctx, lease.Config{Store: st, Name: leaseName, Address: advertise, TTL: cfg.HA.LeaseTTL,
		Logger: log, Registerer: admin.Registry()})
	if err != nil {
		return nil, err
	}
	var fwd *forwarder
	if cfg.MIMI.Address != "" {
		if fwd, err = startForwarder(cfg.MIMI.Address, func(ctx context.Context) (string, error) {
			in, err := lease.Current(ctx, st, leaseName)
			if err != nil {
				return "", err
			}
			if in.Address == advertise {
				return "", errors.New("this replica is named as leader but does not lead")
			}
			return in.Address, nil
		}, log); err != nil {
			return nil, fmt.Errorf("mimi.address (standby forwarder): %w", err)
		}
	}
	// The leader's other listeners (the Matrix appservice endpoint, the admin console) are
	// reached on the same port at the leader's host, as every replica listens on the same ports.
	var side []*forwarder
	for _, addr := range sideListeners(cfg) {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("standby forwarder for %s: %w", addr, err)
		}
		sf, err := startForwarder(addr, func(ctx context.Context) (string, error) {
			in, err := lease.Current(ctx, st, leaseName)
			if err != nil {
				return "", err
			}
			host, _, err := net.SplitHostPort(in.Address)
			if err != nil || in.Address == advertise {
				return "", fmt.Errorf("no leader address to forward %s to (%q)", addr, in.Address)
			}
			return net.JoinHostPort(host, port), nil
		}, log)
		if err != nil {
			return nil, fmt.Errorf("standby forwarder for %s: %w", addr, err)
		}
		side = append(side, sf)
	}
	defer func() {
		for _, sf := range side {
			sf.Close()
		}
	}()
	// A standby is ready: it serves partners by forwarding, and a rolling update may go on.
	admin.MarkStarted()
	log.Info("replica started as standby; waiting for the leader's lease", "lease", leaseName, "holder", l.Holder(), "advertise", advertise)
	_, err = l.Campaign(ctx)
	if fwd != nil {
		fwd.Close()
	}
	if err != nil {
		return nil, err
	}
	st.SetFence(l.Fence)
	// Not ready while the endpoint, adapters and sweeps start on the new leader: the forwarder
	// is closed and the MIMI listener not yet open.
	var promoting atomic.Bool
	promoting.Store(true)
	if err := admin.AddReadiness("leader", func(context.Context) error {
		if promoting.Load() {
			return errors.New("taking over as leader")
		}
		return nil
	}); err != nil {
		return nil, err
	}
	go func() {
		<-l.Lost()
		log.Error("the leader's lease was lost: exiting so that this replica writes nothing more; restarted, it stands by", "exit_status", exitLeaseLost)
		os.Exit(exitLeaseLost)
	}()
	// Registered after the store's close within the store phase, so it runs before it: after every
	// other component stopped writing, the lease is handed over at once.
	sd.Add(ops.PhaseStore, "lease", l.Release)
	return func() { promoting.Store(false) }, nil
}

// sideListeners are the listeners besides mimi.address that only the leader runs: a standby
// forwards them to the leader's host on the same port.
func sideListeners(cfg *config.Config) []string {
	var out []string
	if m := cfg.Bridges.Matrix; m.Enabled && m.Mode == "appservice" && m.Appservice.Listen != "" {
		out = append(out, m.Appservice.Listen)
	}
	if cfg.AdminUI.Address != "" {
		out = append(out, cfg.AdminUI.Address)
	}
	return out
}

// forwarder accepts partners' connections on a standby's MIMI address and passes the bytes to
// and from the leader's MIMI listener (the TLS session is the leader's: nothing is decrypted
// here).
type forwarder struct {
	ln     net.Listener
	leader func(context.Context) (string, error)
	log    *slog.Logger

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startForwarder(addr string, leader func(context.Context) (string, error), log *slog.Logger) (*forwarder, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	f := &forwarder{ln: ln, leader: leader, log: log.With("component", "ha-forwarder"), conns: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go f.accept()
	return f, nil
}

func (f *forwarder) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.wg.Add(1)
		go func() { defer f.wg.Done(); f.serve(c) }()
	}
}

func (f *forwarder) track(c net.Conn, add bool) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conns == nil {
		return false
	}
	if add {
		f.conns[c] = struct{}{}
	} else {
		delete(f.conns, c)
	}
	return true
}

func (f *forwarder) serve(c net.Conn) {
	defer c.Close()
	if !f.track(c, true) {
		return
	}
	defer f.track(c, false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addr, err := f.leader(ctx)
	if err != nil {
		f.log.Warn("no leader to forward a partner's connection to", "err", err)
		return
	}
	var d net.Dialer
	up, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		f.log.Warn("forwarding to the leader failed", "leader", addr, "err", err)
		return
	}
	defer up.Close()
	if !f.track(up, true) {
		return
	}
	defer f.track(up, false)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); closeWrite(up); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); closeWrite(c); done <- struct{}{} }()
	<-done
	<-done
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// Close stops accepting, ends the connections being forwarded and waits for them.
func (f *forwarder) Close() {
	_ = f.ln.Close()
	f.mu.Lock()
	for c := range f.conns {
		_ = c.Close()
	}
	f.conns = nil
	f.mu.Unlock()
	f.wg.Wait()
}
