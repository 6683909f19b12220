// Package xconn keeps one XEP-0114 component connection of the XMPP adapter up: dial, handshake,
// serve the stream until it ends for any reason, back off and dial again (mellium has no reconnect
// of its own), with sends that fail fast while it is down. It knows nothing of MIMI.
package xconn

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/component"
	"mellium.im/xmpp/jid"
)

// ErrNotConnected is returned (wrapped) when a stanza must be sent while the component is
// disconnected; the bus then redelivers the envelope later.
var ErrNotConnected = errors.New("xmpp: component not connected")

// Handler handles one incoming stanza. It runs on the session's read loop with the session
// locked: it must not call the component's send methods (replies go through w) and must not block
// for long. Its errors are logged; they never end the stream.
type Handler func(w xmlstream.TokenReadEncoder, start *xml.StartElement)

// Metrics are the collectors a connection updates, labelled with its name.
type Metrics struct {
	Connected        *prometheus.GaugeVec
	Reconnects, Sent *prometheus.CounterVec
	Panics           prometheus.Counter
}

// Config configures New.
type Config struct {
	Name         string // the label in logs and metrics, e.g. "users"
	Addr         jid.JID
	Secret       string
	Server       string // host:port of the server's component listener
	ReconnectMin time.Duration
	ReconnectMax time.Duration
	DialTimeout  time.Duration
	SendTimeout  time.Duration
	Log          *slog.Logger
	Metrics      Metrics
	// OnUp, if set, runs in a goroutine of its own each time the component has connected.
	OnUp func(ctx context.Context)
}

// Conn is one XEP-0114 component connection kept up by a supervisor.
type Conn struct {
	name    string
	addr    jid.JID
	secret  []byte
	server  string
	handle  Handler
	log     *slog.Logger
	min     time.Duration
	max     time.Duration
	dialTO  time.Duration
	sendTO  time.Duration
	onUp    func(ctx context.Context)
	metrics Metrics

	mu      sync.Mutex
	sess    *xmpp.Session
	netConn net.Conn
	upCh    chan struct{} // closed while connected; replaced on disconnect

	connects atomic.Int64
	downAt   atomic.Int64 // when the last connection ended (Unix ms; 0: never)
	// dialFailed: a dial failed since the last connection ended; serverWasDown: so it did before
	// the current connection came up (the server was not even listening: it restarted).
	dialFailed, serverWasDown atomic.Bool
	done                      chan struct{}
}

// ServerWasDown reports whether the server refused connections (was down) between the previous
// connection and the current one: its client sessions of before are gone.
func (c *Conn) ServerWasDown() bool { return c.serverWasDown.Load() }

// DownAt is when the component's last connection ended (zero if none has).
func (c *Conn) DownAt() time.Time {
	if ms := c.downAt.Load(); ms != 0 {
		return time.UnixMilli(ms)
	}
	return time.Time{}
}

// New returns the connection of cfg, which hands every incoming stanza to h; Run connects it.
func New(cfg Config, h Handler) *Conn {
	return &Conn{
		name: cfg.Name, addr: cfg.Addr, secret: []byte(cfg.Secret), server: cfg.Server, handle: h,
		log: cfg.Log.With("component", cfg.Name, "domain", cfg.Addr.String()),
		min: cfg.ReconnectMin, max: cfg.ReconnectMax, dialTO: cfg.DialTimeout, sendTO: cfg.SendTimeout,
		upCh: make(chan struct{}), done: make(chan struct{}), metrics: cfg.Metrics, onUp: cfg.OnUp,
	}
}

// Addr is the component's address.
func (c *Conn) Addr() jid.JID { return c.addr }

// Connects is how many times the component has connected (1 after the first connection).
func (c *Conn) Connects() int64 { return c.connects.Load() }

// Run keeps the connection up until ctx ends.
func (c *Conn) Run(ctx context.Context) {
	defer close(c.done)
	backoff := c.min
	for ctx.Err() == nil {
		started := time.Now()
		err := c.connectAndServe(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(started) > 10*c.max {
			backoff = c.min // it was up for a good while: start over
		}
		c.log.Warn("component connection ended, reconnecting", "err", err, "backoff", backoff)
		c.metrics.Reconnects.WithLabelValues(c.name).Inc()
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, c.max)
	}
}

func (c *Conn) connectAndServe(ctx context.Context) error {
	dctx, cancel := context.WithTimeout(ctx, c.dialTO)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(dctx, "tcp", c.server)
	if err != nil {
		c.dialFailed.Store(true)
		return fmt.Errorf("dial %s: %w", c.server, err)
	}
	start := time.Now()
	sess, err := component.NewSession(dctx, c.addr, c.secret, nc)
	if err != nil {
		_ = nc.Close()
		return fmt.Errorf("component handshake as %s: %w", c.addr, err)
	}
	// The handshake set deadlines from dctx; clear them for the long-lived stream.
	_ = nc.SetDeadline(time.Time{})
	c.serverWasDown.Store(c.dialFailed.Swap(false))
	c.mu.Lock()
	c.sess, c.netConn = sess, nc
	close(c.upCh)
	c.mu.Unlock()
	c.connects.Add(1)
	c.metrics.Connected.WithLabelValues(c.name).Set(1)
	c.log.Info("component connected", "handshake", time.Since(start))

	stop := context.AfterFunc(ctx, func() { _ = sess.Close(); _ = nc.Close() })
	if c.onUp != nil {
		go c.onUp(ctx)
	}
	err = sess.Serve(xmpp.HandlerFunc(func(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
		c.safeHandle(t, start)
		return nil // an error would end the stream
	}))
	stop()

	c.mu.Lock()
	c.sess, c.netConn = nil, nil
	c.upCh = make(chan struct{})
	c.mu.Unlock()
	c.downAt.Store(time.Now().UnixMilli())
	c.metrics.Connected.WithLabelValues(c.name).Set(0)
	_ = sess.Close()
	_ = nc.Close()
	if err == nil {
		err = errors.New("stream closed by server")
	}
	return err
}

func (c *Conn) safeHandle(t xmlstream.TokenReadEncoder, start *xml.StartElement) {
	defer func() {
		if p := recover(); p != nil {
			c.metrics.Panics.Inc()
			c.log.Error("panic while handling a stanza; stanza dropped", "stanza", start.Name.Local, "panic", fmt.Sprint(p))
		}
	}()
	c.handle(t, start)
}

// Send writes one stanza (an encoding/xml value) on the current session.
func (c *Conn) Send(ctx context.Context, v any) error {
	c.mu.Lock()
	sess := c.sess
	c.mu.Unlock()
	if sess == nil {
		return fmt.Errorf("%w: %s", ErrNotConnected, c.addr)
	}
	ctx, cancel := context.WithTimeout(ctx, c.sendTO)
	defer cancel()
	if err := sess.Encode(ctx, v); err != nil {
		return fmt.Errorf("xmpp: send on %s: %w", c.addr, err)
	}
	c.metrics.Sent.WithLabelValues(c.name).Inc()
	return nil
}

// Session returns the current session, for requests that wait for an answer (IQs). Never call
// it on the read loop: the answer arrives there.
func (c *Conn) Session() (*xmpp.Session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == nil {
		return nil, fmt.Errorf("%w: %s", ErrNotConnected, c.addr)
	}
	return c.sess, nil
}

// Connected reports whether the component is connected now.
func (c *Conn) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess != nil
}

// WaitUp waits until the component is connected or ctx ends.
func (c *Conn) WaitUp(ctx context.Context) error {
	c.mu.Lock()
	ch := c.upCh
	c.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("xmpp: waiting for component %s: %w", c.addr, ctx.Err())
	}
}
