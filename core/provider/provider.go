package provider

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mimi-gateway/mimi-gateway/core/abuse"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/directory"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/mls"
	"github.com/mimi-gateway/mimi-gateway/core/protocol"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

//go:embed migrations
var migrationFS embed.FS

// Schema is this package's store component ("provider"), with its sealed columns. Open migrates
// it together with protocol.Schema.
var Schema = func() store.Migrations {
	m := store.MustMigrationsFromFS("provider", migrationFS, "migrations")
	m.Sealed = sealedColumns
	return m
}()

// Config configures a Provider.
type Config struct {
	// Domain is our provider domain.
	Domain event.Domain
	// Store is the system of record (migrated by New).
	Store *store.Store
	// Bus carries envelopes to and from the adapters.
	Bus bus.Bus
	// CipherSuite of our users' clients [MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519].
	CipherSuite mls.CipherSuite
	// PoolSize is the number of unclaimed one-time KeyPackages kept per user [4].
	PoolSize int
	// KeyPackageLifetime [30 days].
	KeyPackageLifetime time.Duration
	// ClaimedExpiry is how long a claimed KeyPackage (and its private keys) is kept for the
	// Welcome that uses it [DefaultClaimedExpiry]; MaxClaimed bounds the claimed, unused
	// KeyPackages kept per user, the oldest going first [DefaultMaxClaimed].
	ClaimedExpiry time.Duration
	MaxClaimed    int
	// RelayRate limits the KeyPackage claims the hub relays for each follower to a third
	// provider [DefaultRelayRate]. A target provider limits the hub, whoever the claim is for:
	// this keeps one follower from using up all of the hub's claims there.
	RelayRate protocol.RateLimit
	// Users finds local users who have not used the gateway yet, and the network that serves
	// each (nil: only users who have used the gateway are known; a local user whom another
	// adds is then served by the inviter's network).
	Users UserDirectory
	// UsersOnDemand lets a partner's /keyMaterial create the MLS client and KeyPackages of a
	// local user who has not used the gateway yet, once Users finds her (the organisation's
	// policy; false answers userUnknown for such users).
	UsersOnDemand bool
	// ConsumerName is the durable consumer of mimi.out [provider].
	ConsumerName string
	Logger       *slog.Logger
	// DedupeRetention is how long dedupe records (/notify bodies, resubmissions, mimi.out
	// envelopes) are kept [DefaultDedupeRetention]; PruneInterval how often older ones are
	// deleted [DefaultPruneInterval].
	DedupeRetention, PruneInterval time.Duration
	// Now replaces time.Now.
	Now func() time.Time
	// UnreachableNotice is how long a partner may not answer before the local users whose
	// messages wait for it are told [DefaultUnreachableNotice].
	UnreachableNotice time.Duration
	// Registerer receives the provider's metrics (nil: none).
	Registerer prometheus.Registerer
	// GroupCacheBytes bounds the MLS groups kept loaded between messages, counted as their stored
	// epoch states [DefaultGroupCacheBytes]; negative disables the cache.
	GroupCacheBytes int64
	// Assets serves our stored attachments (GET /assets/<id>) and /proxyDownload as hub
	// (assets.go); nil answers both with 404.
	Assets AssetSource
	// Reach decides whether a requester of another organisation may reach one of our users
	// (core/consent.Store implements it); nil lets every configured partner's user reach
	// every user.
	Reach Reach
	// Directory answers partners' identifier queries about our users (directory.go); nil
	// answers every query unsupportedField.
	Directory *directory.Directory
}

// Reach decides whether requester, a user of another organisation, may reach target, one of
// our users (claim its KeyPackages and so add it to a room).
type Reach interface {
	Allows(ctx context.Context, target, requester event.UserURI) (bool, error)
}

// Provider is the gateway's MIMI provider: it holds its legacy users' MLS clients, hosts rooms
// of our domain as hub and follows partners' rooms. It implements protocol.Handler and
// protocol.HubHandler.
type Provider struct {
	cfg Config
	st  *store.Store
	log *slog.Logger
	met *metrics

	client *protocol.Client
	outbox *protocol.Outbox

	roomMu sync.Mutex
	rooms  map[event.RoomURI]*sync.Mutex
	snaps  snapshots    // room state per room at the hub (roomstate.go)
	groups *groupCache  // loaded clients between messages (groupcache.go)
	nets   roomNetworks // networks of the local users per room
	// policyRefusals counts partner hubs' commits our room-policy check refused (roomstate.go).
	policyRefusals atomic.Int64

	reach    reachState            // partners that hold things up (reach.go)
	relay    *protocol.RateLimiter // claims relayed per follower (relay.go)
	parkWake chan struct{}         // wakes runParked (park.go)

	wake   chan struct{}
	cancel context.CancelFunc
	// unlisten removes the provider's listener from the client.
	unlisten func()
	wg       sync.WaitGroup
	sub      bus.Subscription
}

var (
	_ protocol.Handler    = (*Provider)(nil)
	_ protocol.HubHandler = (*Provider)(nil)
)

// New checks cfg, migrates the store and returns a Provider. Start it with Start once the
// protocol client exists.
func New(ctx context.Context, cfg Config) (*Provider, error) {
	if cfg.Domain == "" || cfg.Store == nil || cfg.Bus == nil {
		return nil, errors.New("provider: domain, store and bus are required")
	}
	if cfg.CipherSuite == 0 {
		cfg.CipherSuite = mls.MLS128DHKEMX25519AES128GCMSHA256Ed25519
	}
	if cfg.PoolSize <= 0 {
		cfg.PoolSize = 4
	}
	if cfg.KeyPackageLifetime <= 0 {
		cfg.KeyPackageLifetime = 30 * 24 * time.Hour
	}
	if cfg.ClaimedExpiry <= 0 {
		cfg.ClaimedExpiry = DefaultClaimedExpiry
	}
	if cfg.MaxClaimed <= 0 {
		cfg.MaxClaimed = DefaultMaxClaimed
	}
	if cfg.RelayRate == (protocol.RateLimit{}) {
		cfg.RelayRate = DefaultRelayRate
	}
	if cfg.ConsumerName == "" {
		cfg.ConsumerName = "provider"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.GroupCacheBytes == 0 {
		cfg.GroupCacheBytes = DefaultGroupCacheBytes
	}
	if cfg.DedupeRetention <= 0 {
		cfg.DedupeRetention = DefaultDedupeRetention
	}
	if cfg.PruneInterval <= 0 {
		cfg.PruneInterval = DefaultPruneInterval
	}
	if cfg.UnreachableNotice <= 0 {
		cfg.UnreachableNotice = DefaultUnreachableNotice
	}
	if err := cfg.Store.Migrate(ctx, protocol.Schema, Schema, abuse.Schema); err != nil {
		return nil, fmt.Errorf("provider: migrate: %w", err)
	}
	met := newMetrics()
	met.parkedNow = newParkedCollector(cfg.Store)
	if err := met.register(cfg.Registerer); err != nil {
		return nil, err
	}
	return &Provider{cfg: cfg, st: cfg.Store, log: cfg.Logger.With("component", "provider"), met: met,
		rooms: make(map[event.RoomURI]*sync.Mutex), groups: newGroupCache(cfg.GroupCacheBytes), wake: make(chan struct{}, 1),
		parkWake: make(chan struct{}, 1), reach: reachState{told: map[event.Domain]map[event.RoomURI][]noticeTo{}},
		relay: protocol.NewRateLimiter(cfg.RelayRate)}, nil
}

func (p *Provider) now() time.Time { return p.cfg.Now() }

// Start connects the provider to the partners (client, used also by the outbox), starts the
// outbox, the local inbox worker and the mimi.out consumer.
func (p *Provider) Start(ctx context.Context, client *protocol.Client) error {
	ob, err := protocol.NewOutbox(protocol.OutboxConfig{Store: p.st, Sender: client, Logger: p.cfg.Logger,
		PollInterval: 200 * time.Millisecond, MinBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second, Expire: outboxExpire,
		Registerer: p.cfg.Registerer, OnExpire: p.fanoutExpired})
	if err != nil {
		return fmt.Errorf("provider: outbox: %w", err)
	}
	p.client, p.outbox = client, ob
	// A room whose parked envelopes a killed process was delivering would otherwise wait for
	// that lease (parkLease) before they, and the room's later envelopes, go out.
	if n, err := p.db().releaseOrphanedParked(ctx); err != nil {
		p.log.Warn("parked envelopes of a previous run wait for their lease", "err", err)
	} else if n > 0 {
		p.log.Info("parked envelopes a previous run was delivering are delivered again now", "envelopes", n)
	}
	if p.met.parkedNow != nil {
		p.met.parkedNow.setPartners(client.PartnerDomains)
	}
	rctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.unlisten = client.OnAnswerAgain(func(d event.Domain) { p.partnerBack(rctx, d) })
	p.wg.Add(5)
	go func() { defer p.wg.Done(); _ = ob.Run(rctx) }()
	go func() { defer p.wg.Done(); p.runInbox(rctx) }()
	go func() { defer p.wg.Done(); p.runPrune(rctx) }()
	go func() { defer p.wg.Done(); p.runReach(rctx) }()
	go func() { defer p.wg.Done(); p.runParked(rctx) }()
	sub, err := p.cfg.Bus.ConsumeOut(ctx, p.cfg.ConsumerName, p.handleOut)
	if err != nil {
		p.unlisten()
		cancel()
		p.wg.Wait()
		return fmt.Errorf("provider: consume mimi.out: %w", err)
	}
	p.sub = sub
	p.kick()
	return nil
}

// Close stops the consumer, the inbox worker and the outbox. It does not close the store or
// the bus.
func (p *Provider) Close(ctx context.Context) error {
	var err error
	if p.sub != nil {
		err = p.sub.Stop(ctx)
	}
	if p.unlisten != nil {
		p.unlisten()
	}
	if p.cancel != nil {
		p.cancel()
	}
	p.wg.Wait()
	return err
}

// lockRoom serialises everything the provider does for one room (hub sequencing and applying
// fanout). Lock order: room mutex, then a store transaction.
func (p *Provider) lockRoom(r event.RoomURI) func() {
	p.roomMu.Lock()
	m, ok := p.rooms[r]
	if !ok {
		m = new(sync.Mutex)
		p.rooms[r] = m
	}
	p.roomMu.Unlock()
	m.Lock()
	return m.Unlock
}

// isHub reports whether we host room.
func (p *Provider) isHub(r event.RoomURI) bool { return r.Domain() == p.cfg.Domain }

// groupID is the MLS group ID of a room: mimi://<hub>/g/<id> (protocol-06 §4.8's convention).
func groupID(r event.RoomURI) []byte {
	return []byte("mimi://" + string(r.Domain()) + "/g/" + r.Local())
}

// ---- rooms ----

type roomRow struct {
	Hub   event.Domain
	Epoch uint64
}

// networksOf returns the adapters serving the local users with a client in room, except
// network skip (the adapter a local sender's message came from already shows it). The list is
// kept per room (roomNetworks) until a client joins or leaves the room.
func (p *Provider) networksOf(ctx context.Context, room event.RoomURI, skip event.Network) ([]event.Network, error) {
	all, ok := p.nets.get(room)
	if !ok {
		var err error
		if all, err = p.db().queryNetworks(ctx, room); err != nil {
			return nil, err
		}
		p.nets.put(room, all)
	}
	out := make([]event.Network, 0, len(all))
	for _, n := range all {
		if n != skip {
			out = append(out, n)
		}
	}
	return out, nil
}

// roomNetworks caches queryNetworks per room. Clients join and leave a room only under its lock
// (insertClient, deleteClient), which forget the room's entry; readers hold the lock too.
type roomNetworks struct {
	mu sync.Mutex
	m  map[event.RoomURI][]event.Network
}

// maxRoomNetworks bounds the cache; beyond it the cache starts over.
const maxRoomNetworks = 4096

func (r *roomNetworks) get(room event.RoomURI) ([]event.Network, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, ok := r.m[room]
	return n, ok
}

func (r *roomNetworks) put(room event.RoomURI, nets []event.Network) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil || len(r.m) >= maxRoomNetworks {
		r.m = map[event.RoomURI][]event.Network{}
	}
	r.m[room] = nets
}

func (r *roomNetworks) forget(room event.RoomURI) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m, room)
}
