// Package xmpp is the XMPP adapter: an XEP-0114 component pair on mellium.im/xmpp that shows MIMI
// users as JIDs on a users component and MIMI rooms as MUC rooms hosted on a rooms component, and
// maps messages, corrections, retractions, reactions, replies, receipts, chat markers and media
// links between XMPP stanzas and canonical MIMI content on the bus; room roles are MUC
// affiliations (roles.go).
//
// Concurrency: each component connection has one read loop (mellium's Session.Serve) that decodes
// every stanza into a bounded struct and hands it to one of Config.Workers worker goroutines,
// chosen by conversation (a MUC, or a local user and a puppet), so one conversation's stanzas are
// handled in order; plain messages queued for a worker together are published and recorded as
// one batch before any of them is acknowledged to its sender (ingress.go). IQs are answered on the read loop itself, because mellium replies
// service-unavailable to any IQ the handler did not answer. Workers and the bus handlers
// (HandleMessage, ...) send with the session's goroutine-safe Encode, never from inside the read
// loop. The database is the only shared state; no lock is held across a network call.
package xmpp

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"mellium.im/xmlstream"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/idmap"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/jidmap"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/occupants"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xconn"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xhistory"
	"github.com/mimi-gateway/mimi-gateway/bridges/xmpp/xstanza"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// ErrNotConnected is returned (wrapped) when a stanza must be sent while a component is
// disconnected; the bus then redelivers the envelope later.
var ErrNotConnected = xconn.ErrNotConnected

// Compile-time interface guards: the capabilities this adapter implements.
var (
	_ bridges.Adapter           = (*Adapter)(nil)
	_ bridges.EditHandler       = (*Adapter)(nil)
	_ bridges.DeleteHandler     = (*Adapter)(nil)
	_ bridges.ReactionHandler   = (*Adapter)(nil)
	_ bridges.ReceiptHandler    = (*Adapter)(nil)
	_ bridges.MembershipHandler = (*Adapter)(nil)
	_ bridges.MetadataHandler   = (*Adapter)(nil)
	_ bridges.PortalCreator     = (*Adapter)(nil)
	_ bridges.NoticeHandler     = (*Adapter)(nil)
)

// queueLen is the length of each worker's queue. When a queue is full the read loop waits, which
// pushes back on the XMPP server.
const queueLen = 256

// Option customises New.
type Option func(*Adapter)

// WithHTTPClient sets the HTTP client that downloads files from Config.UploadHosts (default: one
// with a 60s timeout that follows redirects only to upload hosts).
func WithHTTPClient(c *http.Client) Option { return func(a *Adapter) { a.http = c } }

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(a *Adapter) { a.now = now } }

// job is one incoming stanza for a worker.
type job struct {
	msg  *xstanza.InMessage
	pres *xstanza.InPresence
	fn   func(context.Context) // work of the gateway's own for the conversation (rejoin.go)
	comp *xconn.Conn           // the component it arrived on
	at   time.Time
}

// Adapter is the XMPP network adapter. Create it with New, then Start it.
type Adapter struct {
	cfg    Config
	log    *slog.Logger
	reg    prometheus.Registerer
	st     *store.Store
	db     *db
	hist   *xhistory.Store
	ids    *idmap.Map
	core   *bridges.Core
	pub    bus.Publisher
	assets bridges.AssetStore
	http   *http.Client
	now    func() time.Time
	m      *jidmap.Mapper
	met    *metrics
	key    []byte

	users, rooms *xconn.Conn
	queues       []chan job
	langs        bridges.UserLanguages // the languages local users' clients declare
	rec          *occupants.Tracker    // occupants the gateway waits for (rejoin.go)
	// reach and commands serve commands to the gateway's address (commands.go).
	reach    bridges.Reach
	commands *bridges.Commands

	mu sync.Mutex
	// runCtx ends when Stop is called: the components' read loops and the occupant pings end.
	// workCtx, the workers' context, ends when Stop returns.
	runCtx, workCtx    context.Context
	cancel, cancelWork context.CancelFunc
	drain              chan struct{} // closed when nothing queues stanzas any more: workers finish their queues and stop
	stopped            chan struct{} // closed when the workers stopped
	comps, wg          sync.WaitGroup
	started, stopping  bool
}

// New creates the adapter. It migrates the adapter's and idmap's tables in st.
func New(ctx context.Context, cfg Config, deps bridges.Deps, opts ...Option) (*Adapter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Store == nil || deps.Bus == nil {
		return nil, errors.New("xmpp: store and bus are required")
	}
	cfg = cfg.withDefaults()
	st := deps.Store
	a := &Adapter{cfg: cfg, st: st, pub: deps.Bus, log: deps.Log(), reg: deps.Registerer, assets: deps.Assets, now: time.Now,
		reach: deps.Reach}
	a.rec = occupants.NewTracker(a.probeOccupant)
	for _, o := range opts {
		o(a)
	}
	a.log = a.log.With("adapter", "xmpp")
	a.commands = a.gatewayCommands()
	if a.http == nil {
		a.http = &http.Client{Timeout: 60 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 || !a.isUploadHost(req.URL) {
				return errors.New("redirect to a host that is not an upload host")
			}
			return nil
		}}
	}
	if err := st.Migrate(ctx, idmap.Schema, Schema); err != nil {
		return nil, fmt.Errorf("xmpp: migrate: %w", err)
	}
	a.db = &db{s: st, now: a.now}
	a.hist = xhistory.New(st)
	a.ids = idmap.New(st).WithClock(a.now)
	a.m = &jidmap.Mapper{Domain: cfg.Domain, Provider: cfg.Provider, Users: cfg.Users.Domain, Rooms: cfg.Rooms.Domain, Opaque: jidmap.Opaque{S: a.db.s, Now: a.db.now}}
	a.met = newMetrics(a.reg)
	var err error
	if a.key, err = bridges.LoadSecret(ctx, st.KV(kvScope), "hmac-key"); err != nil {
		return nil, err
	}
	a.core = bridges.NewCore(bridges.CoreConfig{Network: event.NetworkXMPP, Store: st, Bus: deps.Bus, IDVersion: cfg.IDVersion,
		Processed: processedScope, SaltLabel: "salt:", Outbound: a.met.outbound, Now: a.now})
	a.core.SetSaltKey(a.key)
	usersJID, _ := jid.New("", cfg.Users.Domain, "")
	roomsJID, _ := jid.New("", cfg.Rooms.Domain, "")
	conn := func(name string, addr jid.JID, secret string) xconn.Config {
		return xconn.Config{Name: name, Addr: addr, Secret: secret, Server: cfg.Server, ReconnectMin: cfg.ReconnectMin, ReconnectMax: cfg.ReconnectMax,
			DialTimeout: cfg.DialTimeout, SendTimeout: cfg.SendTimeout, Log: a.log, Metrics: xconn.Metrics{Connected: a.met.connected,
				Reconnects: a.met.reconnects, Sent: a.met.sent, Panics: a.met.panics}}
	}
	a.users = xconn.New(conn("users", usersJID, cfg.Users.Secret), a.handleUsers)
	rc := conn("rooms", roomsJID, cfg.Rooms.Secret)
	rc.OnUp = func(ctx context.Context) {
		if a.rooms.Connects() > 1 {
			a.recheckOccupants(ctx, a.rooms.DownAt(), a.rooms.ServerWasDown()) // reconnected: the server may have restarted
		}
	}
	a.rooms = xconn.New(rc, a.handleRooms)
	return a, nil
}

// Network implements bridges.Adapter.
func (a *Adapter) Network() event.Network { return event.NetworkXMPP }

// Core implements bridges.Adapter.
func (a *Adapter) Core() *bridges.Core { return a.core }

// Start starts the workers and the two component supervisors. It returns at once; the components
// connect (and reconnect) in the background. Use WaitConnected to wait for them.
func (a *Adapter) Start(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.started {
		return errors.New("xmpp: adapter already started")
	}
	a.started = true
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.workCtx, a.cancelWork = context.WithCancel(context.WithoutCancel(ctx))
	a.runCtx, a.cancel, a.drain, a.stopped = runCtx, cancel, make(chan struct{}), make(chan struct{})
	a.rec.Start(runCtx)
	a.queues = make([]chan job, *a.cfg.Workers)
	for i := range a.queues {
		q := make(chan job, queueLen)
		a.queues[i] = q
		a.wg.Go(func() { a.worker(a.workCtx, q) })
	}
	a.comps.Go(func() { a.users.Run(runCtx) })
	a.comps.Go(func() { a.rooms.Run(runCtx) })
	a.log.Info("xmpp adapter started", "server", a.cfg.Server, "users", a.cfg.Users.Domain, "rooms", a.cfg.Rooms.Domain)
	return nil
}

// Stop disconnects both components, stops the workers after the stanzas already queued (read
// from the server, which does not send them again: they are published before the workers stop)
// and waits for them, or for ctx to end (then the workers' context ends too).
func (a *Adapter) Stop(ctx context.Context) error {
	a.mu.Lock()
	cancel := a.cancel
	first := cancel != nil && !a.stopping
	a.stopping = a.stopping || first
	a.mu.Unlock()
	if cancel == nil {
		return nil
	}
	if first {
		cancel()
		go func() {
			a.comps.Wait() // the read loops ended: no stanza is queued after this
			a.rec.Wait()   // nor any work of the gateway's own
			close(a.drain)
			a.wg.Wait()
			a.cancelWork()
			close(a.stopped)
		}()
	}
	select {
	case <-a.stopped:
		return nil
	case <-ctx.Done():
		a.cancelWork()
		return fmt.Errorf("xmpp: stop: %w", ctx.Err())
	}
}

// WaitConnected waits until both components are connected.
func (a *Adapter) WaitConnected(ctx context.Context) error {
	if err := a.users.WaitUp(ctx); err != nil {
		return err
	}
	return a.rooms.WaitUp(ctx)
}

// Ready reports whether both components are connected (for the readiness probe).
func (a *Adapter) Ready(context.Context) error {
	if !a.users.Connected() || !a.rooms.Connected() {
		return ErrNotConnected
	}
	return nil
}

// Connects returns how many times each component has connected (1 after the first connection).
func (a *Adapter) Connects() (users, rooms int64) {
	return a.users.Connects(), a.rooms.Connects()
}

// enqueue hands a decoded stanza to the worker of its conversation.
func (a *Adapter) enqueue(key string, j job) {
	q := a.queues[a.queueIndex(key)]
	if j.fn != nil && a.runCtx.Err() != nil {
		return // stopping: the gateway's own work is found again after a restart
	}
	select {
	case q <- j:
	case <-a.workCtx.Done(): // Stop gave up waiting for the workers
	}
}

// queueIndex is the index of the worker queue for key.
func (a *Adapter) queueIndex(key string) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(len(a.queues)))
}

// worker runs the jobs of q until ctx ends, or until Stop drains the queues: then it runs what
// is queued and returns. Messages queued together are bridged as one batch (ingress.go),
// made durable before the worker waits for the next stanza.
func (a *Adapter) worker(ctx context.Context, q chan job) {
	in := a.newIngress()
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-q:
			a.runJob(ctx, j, in)
		more:
			for n := 1; n < maxIngressBatch && in.len() > 0; n++ {
				select {
				case j := <-q:
					a.runJob(ctx, j, in)
				default:
					break more
				}
			}
			in.flush(ctx)
		case <-a.drain:
			for {
				select {
				case j := <-q:
					a.runJob(ctx, j, in)
					if in.len() >= maxIngressBatch {
						in.flush(ctx)
					}
				default:
					in.flush(ctx)
					return
				}
			}
		}
	}
}

func (a *Adapter) runJob(ctx context.Context, j job, in *ingress) {
	defer func() {
		if p := recover(); p != nil {
			a.met.panics.Inc()
			a.log.Error("panic while processing a stanza; stanza dropped", "panic", fmt.Sprint(p))
		}
	}()
	if j.msg == nil {
		in.flush(ctx) // only messages join a batch; everything else comes after it
	}
	switch {
	case j.fn != nil:
		j.fn(ctx)
	case j.msg != nil && j.comp == a.rooms:
		a.roomMessage(ctx, j.msg, j.at, in)
	case j.msg != nil:
		a.directMessage(ctx, j.msg, j.at, in)
	case j.pres != nil && j.comp == a.rooms:
		a.roomPresence(ctx, j.pres)
	case j.pres != nil:
		a.puppetPresence(ctx, j.pres)
	}
}

// handleUsers is the read-loop handler of the users component.
func (a *Adapter) handleUsers(w xmlstream.TokenReadEncoder, start *xml.StartElement) {
	a.handleStanza(a.users, w, start)
}

// handleRooms is the read-loop handler of the rooms component.
func (a *Adapter) handleRooms(w xmlstream.TokenReadEncoder, start *xml.StartElement) {
	a.handleStanza(a.rooms, w, start)
}

func (a *Adapter) handleStanza(c *xconn.Conn, w xmlstream.TokenReadEncoder, start *xml.StartElement) {
	at := a.now()
	switch start.Name.Local {
	case "message":
		a.met.received.WithLabelValues("message").Inc()
		var m xstanza.InMessage
		if err := xstanza.Decode(w, start, &m); err != nil {
			a.refuseUndecodable(c, w, start, err)
			return
		}
		if a.fromOurselves(m.From) {
			a.met.dropped.WithLabelValues("loop").Inc()
			return
		}
		a.noteLang(m.From, m.Lang)
		a.enqueue(a.queueKey(c, m.From, m.To), job{msg: &m, comp: c, at: at})
	case "presence":
		a.met.received.WithLabelValues("presence").Inc()
		var p xstanza.InPresence
		if err := xstanza.Decode(w, start, &p); err != nil {
			a.refuseUndecodable(c, w, start, err)
			return
		}
		if a.fromOurselves(p.From) {
			a.met.dropped.WithLabelValues("loop").Inc()
			return
		}
		a.noteLang(p.From, p.Lang)
		a.enqueue(a.queueKey(c, p.From, p.To), job{pres: &p, comp: c, at: at})
	case "iq":
		a.met.received.WithLabelValues("iq").Inc()
		a.handleIQ(c, w, start)
	default:
		a.met.dropped.WithLabelValues("unknown_element").Inc()
	}
}

// noteLang remembers the language a local user's client declares on a stanza.
func (a *Adapter) noteLang(from, lang string) {
	if lang == "" {
		return
	}
	if j, err := jid.Parse(from); err == nil && a.m.IsLocal(j) {
		a.langs.Note(j.Bare().String(), lang)
	}
}

// queueKey picks the worker: everything addressed to one MUC shares a worker, so joins, leaves
// and messages of a room are handled in order.
func (a *Adapter) queueKey(c *xconn.Conn, from, to string) string {
	if c == a.rooms {
		if t, err := jid.Parse(to); err == nil {
			return t.Bare().String()
		}
		return to
	}
	return conversationKey(from, to)
}

// conversationKey picks the worker: stanzas to one MUC, or between one user and one puppet, share
// a key. The key uses the bare JIDs so that all of a user's resources are ordered together.
func conversationKey(from, to string) string {
	t, err := jid.Parse(to)
	if err != nil {
		return to
	}
	if t.Domainpart() != "" && t.Localpart() != "" {
		f, err := jid.Parse(from)
		if err == nil {
			return f.Bare().String() + "|" + t.Bare().String()
		}
	}
	return t.Bare().String()
}

// fromOurselves reports whether a stanza claims to come from one of our own component domains
// (loop protection: puppets never originate stanzas on their own).
func (a *Adapter) fromOurselves(from string) bool {
	j, err := jid.Parse(from)
	if err != nil {
		return false
	}
	d := j.Domainpart()
	return d == a.cfg.Users.Domain || d == a.cfg.Rooms.Domain
}

// refuseUndecodable answers a stanza the adapter could not decode with a stanza error (when it
// has enough addressing to do so) and drops it.
func (a *Adapter) refuseUndecodable(c *xconn.Conn, w xmlstream.TokenReadEncoder, start *xml.StartElement, err error) {
	reason := "malformed"
	if errors.Is(err, xstanza.ErrTooLarge) {
		reason = "too_large"
	}
	a.met.dropped.WithLabelValues(reason).Inc()
	a.log.Info("dropped an undecodable stanza", "stanza", start.Name.Local, "err", err)
	from, to, id, typ := xstanza.Addressing(start)
	if typ == "error" || from == "" || to == "" || len(from) > 3071 || len(to) > 3071 || !xstanza.ValidID(id) && id != "" {
		return
	}
	cond := stanza.BadRequest
	if reason == "too_large" {
		cond = stanza.PolicyViolation
	}
	se := xstanza.StanzaError(stanza.Modify, cond, "the gateway could not read this stanza")
	var v any
	switch start.Name.Local {
	case "message":
		v = &xstanza.OutMessage{From: to, To: from, ID: id, Type: "error", Error: se}
	case "presence":
		v = &xstanza.OutPresence{From: to, To: from, ID: id, Type: "error", Error: se}
	default:
		return
	}
	if err := w.Encode(v); err != nil {
		a.log.Info("could not send a stanza error", "err", err)
	}
}
