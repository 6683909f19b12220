package matrix

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/appservice"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/asapi"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/e2ee"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/mxevent"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/mxlog"
	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/txnbatch"
)

// startAppservice loads the registration, sets up the bot's E2EE device and starts the transaction
// listener.
func (a *Adapter) startAppservice(ctx, runCtx context.Context) error {
	reg, err := LoadRegistration(a.cfg.Appservice.RegistrationFile)
	if err != nil {
		return err
	}
	a.reg = reg
	host, portStr, err := net.SplitHostPort(a.cfg.Appservice.Listen)
	if err != nil {
		return fmt.Errorf("matrix: appservice.listen: %w", err)
	}
	port, _ := strconv.Atoi(portStr)
	as, err := appservice.CreateFull(appservice.CreateOpts{
		Registration: reg, HomeserverDomain: a.cfg.ServerName, HomeserverURL: a.cfg.HomeserverURL,
		HostConfig: appservice.HostConfig{Hostname: host, Port: uint16(port)}, StateStore: a.stateStore,
	})
	if err != nil {
		return fmt.Errorf("matrix: appservice: %w", err)
	}
	as.Log = mxlog.Zerolog(a.log)
	// No blind retries inside a request (mautrix's default for appservices: 4, after 4 s
	// doubling): a homeserver that does not answer is waited for by bridges.Run
	// (ServerWaiter), so delivery resumes within moments of its return, and other failures go
	// back to the bus, which delivers the envelope again.
	as.DefaultHTTPRetries = 0
	a.as = as
	bot := as.BotIntent()
	if err := bot.EnsureRegistered(ctx); err != nil {
		return fmt.Errorf("matrix: register bot %s: %w", bot.UserID, err)
	}

	// The bot's E2EE device: an ordinary client logged in with m.login.application_service, syncing
	// for to-device messages (Dendrite does not push them to appservices, MSC2409/MSC3202).
	cli, err := mautrix.NewClient(a.cfg.HomeserverURL, bot.UserID, reg.AppToken)
	if err != nil {
		return fmt.Errorf("matrix: bot client: %w", err)
	}
	cli.Log = mxlog.Zerolog(a.log)
	cli.StateStore = a.stateStore
	a.syncStore = e2ee.NewSyncStore(a.st.KV(scopeKV), bot.UserID)
	cli.Store = a.syncStore
	sy := e2ee.NewSyncer(a.syncStore)
	cli.Syncer = sy
	a.client = cli
	if _, err := cli.Versions(ctx); err != nil {
		return fmt.Errorf("matrix: homeserver versions: %w", err)
	}
	login := &mautrix.ReqLogin{
		Type:                     mautrix.AuthTypeAppservice,
		Identifier:               mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: string(bot.UserID)},
		InitialDeviceDisplayName: "MIMI gateway",
	}
	if err := a.setupCrypto(ctx, cli, login, sy); err != nil {
		return err
	}
	sy.OnEvent(cli.StateStoreSyncHandler)
	// The bot's sync also carries the timeline of every portal: the catch-up after a restart or
	// a gap, and the redactions that Dendrite 0.13 leaves out of transactions (package catchup).
	// Ready with the first response (its room keys are handled by now), even while a catch-up
	// waits for the transactions: a failing readiness probe must not cut them off.
	a.catchUpOn(sy, cli, func() { a.readyOne.Do(func() { close(a.ready) }) })
	// Read receipts: Dendrite does not push them to appservices either; the bot's sync has them
	// for every portal.
	sy.OnEventType(mevent.EphemeralEventReceipt, func(ctx context.Context, evt *mevent.Event) {
		if err := a.ingestReceipt(ctx, evt); err != nil {
			sy.Fail(err)
		}
	})
	sy.Back = a.homeserverBack
	a.startSync(runCtx, cli)

	a.srv = &http.Server{Handler: asapi.Handler(asapi.Config{Token: reg.ServerToken, MaxTransactionSize: a.cfg.Appservice.MaxTransactionSize,
		Store: a.st, Scope: scopeTxn, Log: a.log, Ghost: a.queryGhost, Transactions: a.metrics.transactions,
		Events: txnbatch.Config{Core: a.core, Lock: &a.ingestMu, Decode: a.decodeRaw, Ingest: a.ingestEventLocked, Failed: transient}.Transaction,
		BeforeAck: func(w http.ResponseWriter, txnID string, events []json.RawMessage) bool {
			return a.beforeAck != nil && a.beforeAck(w, txnID, events)
		}}), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second}
	ln, err := net.Listen("tcp", a.cfg.Appservice.Listen)
	if err != nil {
		return fmt.Errorf("matrix: listen %s: %w", a.cfg.Appservice.Listen, err)
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("transaction listener stopped", "error", err)
		}
	}()
	a.log.Info("appservice listening", "address", ln.Addr().String(), "bot", string(bot.UserID))
	return nil
}

// startSync runs cli's sync loop until ctx ends, restarting it after failures.
func (a *Adapter) startSync(ctx context.Context, cli *mautrix.Client) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for attempt := 0; ctx.Err() == nil; attempt++ {
			err := cli.SyncWithContext(ctx)
			if ctx.Err() != nil {
				return
			}
			a.log.Warn("sync loop stopped, restarting", "user_id", string(cli.UserID), "error", err)
			if !backoff(ctx, attempt) {
				return
			}
		}
	}()
}

// decodeRaw parses one raw event of a transaction; ok is false for an oversized or malformed
// one, which is logged, counted and skipped.
func (a *Adapter) decodeRaw(raw json.RawMessage) (evt *mevent.Event, ok bool) {
	if len(raw) > mxevent.MaxEventSize {
		a.metrics.inbound.WithLabelValues("malformed").Inc()
		a.log.Warn("oversized event in transaction skipped", "bytes", len(raw))
		return nil, false
	}
	evt = new(mevent.Event)
	if err := json.Unmarshal(raw, evt); err != nil {
		a.metrics.inbound.WithLabelValues("malformed").Inc()
		a.log.Warn("malformed event in transaction skipped", "error", err)
		return nil, false
	}
	a.log.Debug("transaction event", "room_id", string(evt.RoomID), "event_id", string(evt.ID), "type", evt.Type.Type, "sender", string(evt.Sender))
	return evt, true
}

// ingestEvent records the state of a state event in the state store, then ingests evt: an event
// that the catch-up (catchup.go) found in the bot's sync.
func (a *Adapter) ingestEvent(ctx context.Context, evt *mevent.Event) error {
	a.ingestMu.Lock()
	defer a.ingestMu.Unlock()
	return a.ingestEventLocked(ctx, evt)
}

// ingestEventLocked is ingestEvent for the events of a transaction (txnbatch). Callers hold
// ingestMu.
func (a *Adapter) ingestEventLocked(ctx context.Context, evt *mevent.Event) error {
	if evt.StateKey != nil && evt.RoomID != "" {
		evt.Type.Class = mevent.StateEventType
		if err := evt.Content.ParseRaw(evt.Type); err == nil {
			mautrix.UpdateStateStore(ctx, a.stateStore, evt)
		}
	}
	return a.ingestLocked(ctx, evt)
}

// queryGhost registers u if it is a ghost: every ghost whose localpart decodes to a MIMI user
// exists (asapi.Config.Ghost).
func (a *Adapter) queryGhost(ctx context.Context, u id.UserID) (bool, error) {
	if _, ok := a.ghosts.URI(u); !ok {
		return false, nil
	}
	return true, a.ensureGhost(ctx, u)
}

// ensureGhost registers a ghost and sets its profile (display name from the MIMI URI) once.
func (a *Adapter) ensureGhost(ctx context.Context, u id.UserID) error {
	uri, ok := a.ghosts.URI(u)
	if !ok {
		return fmt.Errorf("matrix: %s is not a ghost", u)
	}
	intent := a.as.Intent(u)
	if err := intent.EnsureRegistered(ctx); err != nil {
		return fmt.Errorf("matrix: register ghost %s: %w", u, err)
	}
	name := displayNameOf(uri)
	var have string
	_ = a.st.QueryRowContext(ctx, `SELECT name FROM matrix_ghost WHERE user_id = ?`, string(u)).Scan(&have)
	if have == name {
		return nil
	}
	if err := intent.SetDisplayName(ctx, name); err != nil {
		return fmt.Errorf("matrix: ghost display name: %w", err)
	}
	_, err := a.st.ExecContext(ctx, `INSERT INTO matrix_ghost (user_id, mimi_user, name, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (user_id) DO UPDATE SET name = excluded.name, updated_at = excluded.updated_at`,
		string(u), string(uri), name, time.Now().UnixMilli())
	if err != nil {
		return fmt.Errorf("matrix: store ghost: %w", err)
	}
	return nil
}
