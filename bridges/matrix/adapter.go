// Package matrix is the gateway's Matrix adapter. It turns Matrix events into canonical MIMI
// envelopes on the bus and renders MIMI envelopes as Matrix events, in one of two modes:
//
//   - appservice (BundesMessenger, or any homeserver whose operator consents): ghosts for MIMI
//     users, a portal room per MIMI room, transactions published durably before the homeserver
//     gets its 200, transaction and event IDs deduplicated in the store;
//   - client (TI-Messenger, which forbids server-side bridging): one functional account, labelled
//     as a bot, logs in as an ordinary client with its own E2EE device, joins rooms it is invited
//     to (honouring the account's invite permissions) and relays with per-message sender
//     attribution (MSC4144 per-message profiles plus a plain-text prefix).
//
// Room roles map to power levels both ways (roles.go, docs/matrix.md "Roles").
//
// Both modes are end-to-end encrypted with mautrix's crypto package built with -tags goolm; the
// crypto store lives in the gateway's store (core/store) through go.mau.fi/util/dbutil.
//
// Concurrency: incoming events are ingested one at a time (ingestMu), which keeps per-room order
// and makes the dedupe check-then-publish sequence race-free. Outgoing envelopes arrive from the bus
// one room at a time; sends to different rooms may run in parallel.
package matrix

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/appservice"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/sqlstatestore"

	"github.com/mimi-gateway/mimi-gateway/bridges"
	"github.com/mimi-gateway/mimi-gateway/bridges/idmap"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/e2ee"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/mgmtrooms"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/mxlog"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/portals"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/receipts"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/sendonce"
	"github.com/mimi-gateway/mimi-gateway/core/bus"
	"github.com/mimi-gateway/mimi-gateway/core/event"
	"github.com/mimi-gateway/mimi-gateway/core/store"
)

// Component is the migration component of this package's tables.
const Component = "matrix"

//go:embed migrations
var migrationFS embed.FS

// Schema is the migration set of the adapter's tables (portals, parked encrypted events, ghosts),
// with its sealed column.
var Schema = func() store.Migrations {
	m := store.MustMigrationsFromFS(Component, migrationFS, "migrations")
	m.Sealed = []store.SealedColumn{e2ee.SealedPending}
	return m
}()

// Store scopes.
const (
	scopeTxn   store.Scope = "matrix.txn"
	scopeEvent store.Scope = "matrix.event"
	scopeOut   store.Scope = "matrix.out"
	scopeKV    store.Scope = "matrix"
)

// Adapter is the Matrix adapter.
type Adapter struct {
	cfg     Config
	st      *store.Store
	pub     bus.Publisher
	assets  bridges.AssetStore
	reach   bridges.Reach // people's search and consent commands (commands.go); nil: unavailable
	log     *slog.Logger
	core    *bridges.Core
	ghosts  Ghosts
	portals portals.Table   // which Matrix room shows which MIMI room; power levels recorded
	mgmt    mgmtrooms.Rooms // the local users' 1:1 rooms with the gateway's account
	metrics *metrics

	reg        *appservice.Registration
	as         *appservice.AppService
	client     *mautrix.Client // the device that holds the E2EE keys: AS bot device or functional account
	crypto     *e2ee.Device
	parking    *e2ee.Parking // encrypted events waiting for their room keys
	stateStore *sqlstatestore.SQLStateStore
	db         *dbutil.Database
	syncStore  *e2ee.SyncStore
	sent       sendonce.Guard  // sends whose answer was lost are not repeated when they arrived
	receipts   *receipts.Queue // read receipts to send, the latest per room and user

	srv      *http.Server
	ingestMu sync.Mutex
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	started  bool
	// beforeAck, when set (tests), runs after a transaction was published and before it is
	// acknowledged; returning true ends the request without an answer (a simulated crash).
	beforeAck func(w http.ResponseWriter, txnID string, events []json.RawMessage) bool
	ready     chan struct{} // closed after the first successful sync
	readyOne  sync.Once
	// commands are the commands of the bot and the functional account; read-only after New.
	commands *bridges.Commands
}

// Compile-time guards: the adapter implements the contract and these capabilities.
var (
	_ bridges.Adapter           = (*Adapter)(nil)
	_ bridges.EditHandler       = (*Adapter)(nil)
	_ bridges.DeleteHandler     = (*Adapter)(nil)
	_ bridges.ReactionHandler   = (*Adapter)(nil)
	_ bridges.MembershipHandler = (*Adapter)(nil)
	_ bridges.MetadataHandler   = (*Adapter)(nil)
	_ bridges.PortalCreator     = (*Adapter)(nil)
	_ bridges.ReceiptHandler    = (*Adapter)(nil)
	_ bridges.NoticeHandler     = (*Adapter)(nil)
)

// New checks the configuration and returns an adapter; Start connects it.
// Its tables are migrated by Start.
func New(_ context.Context, cfg Config, deps bridges.Deps) (*Adapter, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Store == nil || deps.Bus == nil {
		return nil, errors.New("matrix: store and bus are required")
	}
	a := &Adapter{
		cfg: cfg, st: deps.Store, pub: deps.Bus, assets: deps.Assets, reach: deps.Reach,
		portals: portals.Table{Q: deps.Store}, mgmt: mgmtrooms.Rooms{Store: deps.Store, Scope: scopeKV},
		log:     deps.Log().With("component", "matrix", "mode", string(cfg.Mode)),
		ghosts:  Ghosts{Prefix: cfg.Appservice.GhostPrefix, Server: cfg.ServerName},
		metrics: newMetrics(),
		ready:   make(chan struct{}),
	}
	a.receipts = receipts.New(deps.Store, a.sendReceipt, a.log)
	a.core = bridges.NewCore(bridges.CoreConfig{Network: event.NetworkMatrix, Store: deps.Store, Bus: deps.Bus,
		IDVersion: cfg.IDVersion, Processed: scopeOut, Echo: scopeEvent, Outbound: a.metrics.outbound})
	a.initCommands()
	if deps.Registerer != nil {
		if err := a.metrics.register(deps.Registerer); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// Network implements bridges.Adapter.
func (a *Adapter) Network() event.Network { return event.NetworkMatrix }

// Core implements bridges.Adapter.
func (a *Adapter) Core() *bridges.Core { return a.core }

// Start implements bridges.Adapter: it migrates the adapter's tables, sets up encryption and
// starts the transaction listener (appservice mode) or the sync loop (client mode).
func (a *Adapter) Start(ctx context.Context) error {
	if a.started {
		return errors.New("matrix: adapter already started")
	}
	if err := a.st.Migrate(ctx, Schema, idmap.Schema); err != nil {
		return fmt.Errorf("matrix: migrate: %w", err)
	}
	key, err := bridges.LoadSecret(ctx, a.st.KV(scopeKV), "salt_key")
	if err != nil {
		return err
	}
	a.core.SetSaltKey(key)
	dialect := "sqlite3"
	if a.st.Dialect() == store.Postgres {
		dialect = "postgres"
	}
	if a.db, err = dbutil.NewWithDB(a.st.DB(), dialect); err != nil {
		return fmt.Errorf("matrix: wrap store for mautrix: %w", err)
	}
	zl := mxlog.Zerolog(a.log)
	a.db.Log = dbutil.ZeroLogger(zl.With().Str("db_section", "mautrix").Logger())
	a.stateStore = sqlstatestore.NewSQLStateStore(a.db, dbutil.ZeroLogger(zl.With().Str("db_section", "matrix_state").Logger()), false)
	if err := a.stateStore.Upgrade(ctx); err != nil {
		return fmt.Errorf("matrix: state store: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.cancel = cancel
	switch a.cfg.Mode {
	case ModeAppservice:
		err = a.startAppservice(ctx, runCtx)
	case ModeClient:
		err = a.startClient(ctx, runCtx)
	}
	if err != nil {
		cancel()
		a.wg.Wait()
		return err
	}
	a.wg.Add(2)
	go func() { defer a.wg.Done(); a.parking.Loop(runCtx) }()
	go func() { defer a.wg.Done(); a.receipts.Run(runCtx) }()
	a.started = true
	return nil
}

// FirstSync returns a channel closed once the adapter's device has completed its first sync, i.e.
// it receives to-device messages (room keys).
func (a *Adapter) FirstSync() <-chan struct{} { return a.ready }

// Ready implements bridges.Adapter: the adapter is ready after its first sync.
func (a *Adapter) Ready(context.Context) error {
	select {
	case <-a.ready:
		return nil
	default:
		return errors.New("matrix: first sync not completed")
	}
}

// Stop implements bridges.Adapter.
func (a *Adapter) Stop(ctx context.Context) error {
	if !a.started {
		return nil
	}
	a.started = false
	var errs []error
	if a.srv != nil {
		if err := a.srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("matrix: stop transaction listener: %w", err))
		}
	}
	if a.client != nil {
		a.client.StopSync()
	}
	a.cancel()
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("matrix: stop: %w", ctx.Err()))
	}
	return errors.Join(errs...)
}

// lang is the language of the gateway's notices and command answers.
func (a *Adapter) lang() bridges.Language { return bridges.ConfiguredLanguage(a.cfg.Language) }

// botUserID is the appservice bot or the functional account.
func (a *Adapter) botUserID() id.UserID {
	if a.cfg.Mode == ModeClient {
		return a.cfg.Client.UserID
	}
	return id.NewUserID(a.cfg.Appservice.BotLocalpart, a.cfg.ServerName)
}

// isOwn reports whether u is one of the adapter's own users (bot, functional account, ghost):
// their events are echoes and never go back to MIMI.
func (a *Adapter) isOwn(u id.UserID) bool {
	if u == a.botUserID() {
		return true
	}
	return a.cfg.Mode == ModeAppservice && a.ghosts.IsGhost(u)
}

func backoff(ctx context.Context, attempt int) bool {
	d := time.Duration(1<<min(attempt, 5)) * 250 * time.Millisecond
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
