package matrix

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/appservice"
	mevent "maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/mimi-gateway/mimi-gateway/bridges/matrix/e2ee"
)

// maxTxnIDLength bounds a transaction ID from the homeserver.
const maxTxnIDLength = 255

// maxTransactionEvents bounds the events of one transaction (Synapse sends at most 100, Dendrite 50).
const maxTransactionEvents = 1000

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
	as.Log = zerologFor(a.log)
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
	cli.Log = zerologFor(a.log)
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
	// Dendrite 0.13 does not put redactions into appservice transactions; the bot sees them in its
	// sync (it is joined to every portal). Event-ID dedupe makes double delivery harmless.
	sy.OnEventType(mevent.EventRedaction, func(ctx context.Context, evt *mevent.Event) {
		if evt.Mautrix.EventSource&mevent.SourceTimeline == 0 {
			return
		}
		if err := a.ingest(ctx, evt); err != nil {
			sy.Fail(err)
		}
	})
	// Read receipts: Dendrite does not push them to appservices either; the bot's sync has them
	// for every portal.
	sy.OnEventType(mevent.EphemeralEventReceipt, func(ctx context.Context, evt *mevent.Event) {
		if err := a.ingestReceipt(ctx, evt); err != nil {
			sy.Fail(err)
		}
	})
	sy.After = func(context.Context) { a.readyOne.Do(func() { close(a.ready) }) }
	sy.Back = a.homeserverBack
	a.startSync(runCtx, cli)

	mux := http.NewServeMux()
	mux.HandleFunc("PUT /_matrix/app/v1/transactions/{txnID}", a.handleTransaction)
	mux.HandleFunc("GET /_matrix/app/v1/users/{userID}", a.handleQueryUser)
	mux.HandleFunc("GET /_matrix/app/v1/rooms/{alias}", a.handleQueryAlias)
	mux.HandleFunc("POST /_matrix/app/v1/ping", a.handlePing)
	a.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 60 * time.Second}
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

// checkToken compares the homeserver's token in constant time.
func (a *Adapter) checkToken(w http.ResponseWriter, r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		tok = r.URL.Query().Get("access_token") // legacy homeservers
	}
	if tok == "" {
		mautrix.MMissingToken.WithMessage("Missing access token").Write(w)
		a.metrics.transactions.WithLabelValues("unauthorized").Inc()
		return false
	}
	if subtle.ConstantTimeCompare([]byte(tok), []byte(a.reg.ServerToken)) != 1 {
		mautrix.MForbidden.WithMessage("Invalid access token").Write(w)
		a.metrics.transactions.WithLabelValues("unauthorized").Inc()
		return false
	}
	return true
}

// transaction is the body of PUT /transactions; events stay raw so that one malformed event cannot
// reject the whole transaction.
type transaction struct {
	Events []json.RawMessage `json:"events"`
}

// handleTransaction publishes every event of the transaction to the bus (durably) before answering
// 200. Transaction IDs and event IDs are deduplicated in the store, so a transaction redelivered
// after a crash is processed once. A failure answers 500 and the homeserver retries.
func (a *Adapter) handleTransaction(w http.ResponseWriter, r *http.Request) {
	if !a.checkToken(w, r) {
		return
	}
	txnID := r.PathValue("txnID")
	if txnID == "" || len(txnID) > maxTxnIDLength {
		mautrix.MInvalidParam.WithMessage("Invalid transaction ID").Write(w)
		a.metrics.transactions.WithLabelValues("bad_request").Inc()
		return
	}
	// Handling must not stop when the homeserver gives up on the request; it continues and the
	// redelivery finds the events deduplicated.
	ctx := context.WithoutCancel(r.Context())
	log := a.log.With("txn_id", txnID)
	done, err := a.st.IsProcessed(ctx, scopeTxn, txnID)
	if err != nil {
		log.Error("transaction dedupe failed", "error", err)
		mautrix.MUnknown.WithMessage("store unavailable").Write(w)
		a.metrics.transactions.WithLabelValues("error").Inc()
		return
	}
	if done {
		writeEmptyJSON(w)
		a.metrics.transactions.WithLabelValues("duplicate").Inc()
		log.Debug("duplicate transaction acknowledged")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, a.cfg.Appservice.MaxTransactionSize+1))
	if err != nil || int64(len(body)) > a.cfg.Appservice.MaxTransactionSize {
		mautrix.MTooLarge.WithMessage("Transaction too large or unreadable").Write(w)
		a.metrics.transactions.WithLabelValues("bad_request").Inc()
		return
	}
	var txn transaction
	if err := json.Unmarshal(body, &txn); err != nil {
		log.Warn("transaction is not valid JSON", "error", err)
		mautrix.MNotJSON.WithMessage("Transaction is not valid JSON").Write(w)
		a.metrics.transactions.WithLabelValues("bad_request").Inc()
		return
	}
	if len(txn.Events) > maxTransactionEvents {
		log.Warn("transaction has too many events", "events", len(txn.Events))
		mautrix.MTooLarge.WithMessage("Too many events").Write(w)
		a.metrics.transactions.WithLabelValues("bad_request").Inc()
		return
	}
	for i, raw := range txn.Events {
		if err := a.ingestRaw(ctx, raw); err != nil {
			log.Error("transaction not acknowledged, homeserver will retry", "event_index", i, "error", err)
			mautrix.MUnknown.WithMessage("Temporary failure").Write(w)
			a.metrics.transactions.WithLabelValues("error").Inc()
			return
		}
	}
	if a.beforeAck != nil && a.beforeAck(w, txnID, txn.Events) {
		return // the test hook simulated a crash between publishing and answering
	}
	if _, err := a.st.MarkProcessed(ctx, scopeTxn, txnID); err != nil {
		log.Error("recording transaction failed", "error", err)
		mautrix.MUnknown.WithMessage("store unavailable").Write(w)
		a.metrics.transactions.WithLabelValues("error").Inc()
		return
	}
	writeEmptyJSON(w)
	a.metrics.transactions.WithLabelValues("ok").Inc()
}

// ingestRaw parses one raw event of a transaction (state is recorded first) and ingests it.
func (a *Adapter) ingestRaw(ctx context.Context, raw json.RawMessage) error {
	if len(raw) > MaxEventSize {
		a.metrics.inbound.WithLabelValues("malformed").Inc()
		a.log.Warn("oversized event in transaction skipped", "bytes", len(raw))
		return nil
	}
	var evt mevent.Event
	if err := json.Unmarshal(raw, &evt); err != nil {
		a.metrics.inbound.WithLabelValues("malformed").Inc()
		a.log.Warn("malformed event in transaction skipped", "error", err)
		return nil
	}
	a.log.Debug("transaction event", "room_id", string(evt.RoomID), "event_id", string(evt.ID), "type", evt.Type.Type, "sender", string(evt.Sender))
	if evt.StateKey != nil && evt.RoomID != "" {
		evt.Type.Class = mevent.StateEventType
		if err := evt.Content.ParseRaw(evt.Type); err == nil {
			mautrix.UpdateStateStore(ctx, a.stateStore, &evt)
		}
	}
	return a.ingest(ctx, &evt)
}

func writeEmptyJSON(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("{}"))
}

// handleQueryUser answers the homeserver's question whether a ghost exists: every ghost whose
// localpart decodes to a MIMI user does (it is registered on first use).
func (a *Adapter) handleQueryUser(w http.ResponseWriter, r *http.Request) {
	if !a.checkToken(w, r) {
		return
	}
	u := id.UserID(r.PathValue("userID"))
	if _, ok := a.ghosts.URI(u); !ok {
		mautrix.MNotFound.WithMessage("Not a MIMI ghost").Write(w)
		return
	}
	if err := a.ensureGhost(r.Context(), u); err != nil {
		mautrix.MUnknown.WithMessage("Could not register ghost").Write(w)
		return
	}
	writeEmptyJSON(w)
}

func (a *Adapter) handleQueryAlias(w http.ResponseWriter, r *http.Request) {
	if !a.checkToken(w, r) {
		return
	}
	mautrix.MNotFound.WithMessage("Aliases are not provided").Write(w)
}

func (a *Adapter) handlePing(w http.ResponseWriter, r *http.Request) {
	if !a.checkToken(w, r) {
		return
	}
	writeEmptyJSON(w)
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
